/**
 * The composite folder's client class, by the client label composite drivers report:
 * apart from index.ts as every folder's clients are (drivers/clients.ts).
 */
import { COMPOSITE_CLIENT } from "@jumpstarter/driver";
import type { DriverFolder } from "../folder.ts";
import { CompositeClient } from "./client.ts";

export default [{ labels: [COMPOSITE_CLIENT], client: CompositeClient }] satisfies DriverFolder["clients"];
