/**
 * The gpiod folder's client classes and the client labels their drivers report:
 * apart from the drivers, so that `j` registers clients without loading drivers
 * (drivers/clients.ts).
 */
import type { DriverFolder } from "../folder.ts";
import { DigitalInputClient, DigitalOutputClient } from "./client.ts";

export const DIGITAL_OUTPUT_CLIENT = "jumpstarter_driver_gpiod.client.DigitalOutputClient";
export const DIGITAL_INPUT_CLIENT = "jumpstarter_driver_gpiod.client.DigitalInputClient";

export default [
  { labels: [DIGITAL_OUTPUT_CLIENT], client: DigitalOutputClient },
  { labels: [DIGITAL_INPUT_CLIENT], client: DigitalInputClient },
] satisfies DriverFolder["clients"];
