/**
 * The shell folder's client classes and the client labels their drivers report:
 * apart from the drivers, so that `j` registers clients without loading drivers
 * (drivers/clients.ts).
 */
import type { DriverFolder } from "../folder.ts";
import { ShellClient } from "./client.ts";

export const SHELL_CLIENT = "jumpstarter_driver_shell.client.ShellClient";

export default [
  { labels: [SHELL_CLIENT], client: ShellClient },
] satisfies DriverFolder["clients"];
