/** What the http folder adds to the catalogue. */
import type { DriverFolder } from "../folder.ts";
import clients from "./clients.ts";
import { HttpServer } from "./driver.ts";

export default {
  drivers: [{ name: "HttpServer", types: ["HttpServer", "jumpstarter_driver_http.driver.HttpServer"], driver: HttpServer }],
  clients,
} satisfies DriverFolder;
