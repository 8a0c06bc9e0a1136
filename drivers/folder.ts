/** The shape of a built-in driver folder's index.ts: its drivers and client classes. */
import type { DriverClass, DriverClient, ClientInit } from "@jumpstarter/driver";

export interface DriverFolder {
  drivers: { name: string; types: string[]; driver: DriverClass }[];
  clients: { labels: string[]; client: new (init: ClientInit) => DriverClient }[];
}
