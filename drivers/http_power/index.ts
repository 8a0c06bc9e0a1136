/** What the http_power folder adds to the catalogue (its client is the power folder's). */
import type { DriverFolder } from "../folder.ts";
import { HttpPower } from "./driver.ts";

export default {
  drivers: [{ name: "HttpPower", types: ["HttpPower", "jumpstarter_driver_http_power.driver.HttpPower"], driver: HttpPower }],
  clients: [],
} satisfies DriverFolder;
