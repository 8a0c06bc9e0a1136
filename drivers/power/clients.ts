/**
 * The power folder's client classes and the client labels their drivers report:
 * apart from the drivers, so that `j` registers clients without loading drivers
 * (drivers/clients.ts).
 */
import type { DriverFolder } from "../folder.ts";
import { PowerClient } from "./client.ts";

export const POWER_CLIENT = "jumpstarter_driver_power.client.PowerClient";

export default [
  { labels: [POWER_CLIENT, "jumpstarter_driver_power.client.VirtualPowerClient"], client: PowerClient },
] satisfies DriverFolder["clients"];
