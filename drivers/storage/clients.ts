/**
 * The storage folder's client classes and the client labels their drivers report:
 * apart from the drivers, so that `j` registers clients without loading drivers
 * (drivers/clients.ts).
 */
import type { DriverFolder } from "../folder.ts";
import { FlasherClient, StorageMuxClient, StorageMuxFlasherClient } from "./client.ts";

export const STORAGE_MUX_CLIENT = "jumpstarter_driver_opendal.client.StorageMuxClient";
export const STORAGE_MUX_FLASHER_CLIENT = "jumpstarter_driver_opendal.client.StorageMuxFlasherClient";
export const FLASHER_CLIENT = "jumpstarter_driver_opendal.client.FlasherClient";

export default [
  { labels: [STORAGE_MUX_CLIENT], client: StorageMuxClient },
  { labels: [STORAGE_MUX_FLASHER_CLIENT], client: StorageMuxFlasherClient },
  { labels: [FLASHER_CLIENT], client: FlasherClient },
] satisfies DriverFolder["clients"];
