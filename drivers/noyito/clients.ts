/**
 * The noyito folder's client classes and the client labels their drivers report:
 * apart from the drivers, so that `j` registers clients without loading drivers
 * (drivers/clients.ts).
 */
import type { DriverFolder } from "../folder.ts";
import { NoyitoPowerClient } from "./client.ts";

export const NOYITO_CLIENT = "jumpstarter_driver_noyito_relay.client.NoyitoPowerClient";

export default [
  { labels: [NOYITO_CLIENT], client: NoyitoPowerClient },
] satisfies DriverFolder["clients"];
