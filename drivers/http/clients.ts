/**
 * The http folder's client classes and the client labels their drivers report:
 * apart from the drivers, so that `j` registers clients without loading drivers
 * (drivers/clients.ts).
 */
import type { DriverFolder } from "../folder.ts";
import { HttpServerClient } from "./client.ts";

export const HTTP_CLIENT = "jumpstarter_driver_http.client.HttpServerClient";

export default [
  { labels: [HTTP_CLIENT], client: HttpServerClient },
] satisfies DriverFolder["clients"];
