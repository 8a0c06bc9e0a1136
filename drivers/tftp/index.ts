/** What the tftp folder adds to the catalogue. */
import type { DriverFolder } from "../folder.ts";

export default {
  drivers: [],
  clients: [],
} satisfies DriverFolder;
