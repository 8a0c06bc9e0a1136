/** What the serial folder adds to the catalogue. */
import type { DriverFolder } from "../folder.ts";
import clients from "./clients.ts";
import { PySerial } from "./driver.ts";

export default {
  drivers: [{ name: "PySerial", types: ["PySerial", "Serial", "jumpstarter_driver_pyserial.driver.PySerial"], driver: PySerial }],
  clients,
} satisfies DriverFolder;
