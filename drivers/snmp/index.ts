/** What the snmp folder adds to the catalogue: upstream's SNMPServerClient is a PowerClient, and so is ours. */
import type { DriverFolder } from "../folder.ts";
import clients from "./clients.ts";
import { SNMPServer } from "./driver.ts";

export default {
  drivers: [{ name: "SNMPServer", types: ["SNMPServer", "jumpstarter_driver_snmp.driver.SNMPServer"], driver: SNMPServer }],
  clients,
} satisfies DriverFolder;
