/** What the serial folder adds to the catalogue. */
import type { DriverFolder } from "../folder.ts";
import { SerialClient } from "./client.ts";
import { PySerial, SERIAL_CLIENT } from "./driver.ts";

export default {
  drivers: [{ name: "PySerial", types: ["PySerial", "Serial", "jumpstarter_driver_pyserial.driver.PySerial"], driver: PySerial }],
  clients: [{ labels: [SERIAL_CLIENT], client: SerialClient }],
} satisfies DriverFolder;
