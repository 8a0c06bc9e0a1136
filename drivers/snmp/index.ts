/** What the snmp folder adds to the catalogue: upstream's SNMPServerClient is a PowerClient, and so is ours. */
import type { DriverFolder } from "../folder.ts";
import { PowerClient } from "../power/client.ts";
import { SNMP_CLIENT, SNMPServer } from "./driver.ts";

export default {
  drivers: [{ name: "SNMPServer", types: ["SNMPServer", "jumpstarter_driver_snmp.driver.SNMPServer"], driver: SNMPServer }],
  clients: [{ labels: [SNMP_CLIENT], client: PowerClient }],
} satisfies DriverFolder;
