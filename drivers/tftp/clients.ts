/**
 * The tftp folder's client classes and the client labels their drivers report:
 * apart from the drivers, so that `j` registers clients without loading drivers
 * (drivers/clients.ts).
 */
import type { DriverFolder } from "../folder.ts";
import { TftpServerClient } from "./client.ts";

export const TFTP_CLIENT = "jumpstarter_driver_tftp.client.TftpServerClient";

export default [
  { labels: [TFTP_CLIENT], client: TftpServerClient },
] satisfies DriverFolder["clients"];
