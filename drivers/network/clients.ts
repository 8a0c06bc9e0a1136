/**
 * The network folder's client classes and the client labels their drivers report:
 * apart from the drivers, so that `j` registers clients without loading drivers
 * (drivers/clients.ts).
 */
import type { DriverFolder } from "../folder.ts";
import { NetworkClient } from "./client.ts";

export const NETWORK_CLIENT = "jumpstarter_driver_network.client.NetworkClient";

export default [
  { labels: [NETWORK_CLIENT], client: NetworkClient },
] satisfies DriverFolder["clients"];
