/** What the shell folder adds to the catalogue. */
import type { DriverFolder } from "../folder.ts";
import { ShellClient } from "./client.ts";
import { Shell, SHELL_CLIENT } from "./driver.ts";

export { CommandExitError } from "./command-exit.ts";

export default {
  drivers: [{ name: "Shell", types: ["Shell", "jumpstarter_driver_shell.driver.Shell"], driver: Shell }],
  clients: [{ labels: [SHELL_CLIENT], client: ShellClient }],
} satisfies DriverFolder;
