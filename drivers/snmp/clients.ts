/**
 * The snmp folder's client classes and the client labels their drivers report:
 * apart from the drivers, so that `j` registers clients without loading drivers
 * (drivers/clients.ts).
 */
import type { DriverFolder } from "../folder.ts";
import { PowerClient } from "../power/client.ts";

export const SNMP_CLIENT = "jumpstarter_driver_snmp.client.SNMPServerClient";

export default [
  { labels: [SNMP_CLIENT], client: PowerClient },
] satisfies DriverFolder["clients"];
