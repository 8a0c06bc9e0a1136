/** What the composite folder adds: the client (the drivers live in the runtime). */
import type { DriverFolder } from "../folder.ts";
import clients from "./clients.ts";

export default {
  drivers: [],
  clients,
} satisfies DriverFolder;
