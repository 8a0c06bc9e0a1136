/** What the http folder adds to the catalogue. */
import type { DriverFolder } from "../folder.ts";
import { HttpServerClient } from "./client.ts";
import { HTTP_CLIENT, HttpServer } from "./driver.ts";

export default {
  drivers: [{ name: "HttpServer", types: ["HttpServer", "jumpstarter_driver_http.driver.HttpServer"], driver: HttpServer }],
  clients: [{ labels: [HTTP_CLIENT], client: HttpServerClient }],
} satisfies DriverFolder;
