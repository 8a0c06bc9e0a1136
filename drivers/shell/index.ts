/** What the shell folder adds to the catalogue. */
import type { DriverFolder } from "../folder.ts";
import clients from "./clients.ts";
import { Shell } from "./driver.ts";

export { CommandExitError } from "./command-exit.ts";

export default {
  drivers: [{ name: "Shell", types: ["Shell", "jumpstarter_driver_shell.driver.Shell"], driver: Shell }],
  clients,
} satisfies DriverFolder;
