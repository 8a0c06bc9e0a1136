/**
 * The serial folder's client classes and the client labels their drivers report:
 * apart from the drivers, so that `j` registers clients without loading drivers
 * (drivers/clients.ts).
 */
import type { DriverFolder } from "../folder.ts";
import { SerialClient } from "./client.ts";

export const SERIAL_CLIENT = "jumpstarter_driver_pyserial.client.PySerialClient";

export default [
  { labels: [SERIAL_CLIENT], client: SerialClient },
] satisfies DriverFolder["clients"];
