/** What the composite folder adds: the client (the drivers live in the runtime). */
import { COMPOSITE_CLIENT } from "@jumpstarter/driver";
import type { DriverFolder } from "../folder.ts";
import { CompositeClient } from "./client.ts";

export default {
  drivers: [],
  clients: [{ labels: [COMPOSITE_CLIENT], client: CompositeClient }],
} satisfies DriverFolder;
