/** What the gpiod folder adds to the catalogue. */
import type { DriverFolder } from "../folder.ts";
import clients from "./clients.ts";
import { DigitalInput, DigitalOutput, PowerSwitch } from "./driver.ts";

export default {
  drivers: [
    { name: "DigitalOutput", types: ["DigitalOutput", "jumpstarter_driver_gpiod.driver.DigitalOutput"], driver: DigitalOutput },
    { name: "DigitalInput", types: ["DigitalInput", "jumpstarter_driver_gpiod.driver.DigitalInput"], driver: DigitalInput },
    { name: "PowerSwitch", types: ["PowerSwitch", "jumpstarter_driver_gpiod.driver.PowerSwitch"], driver: PowerSwitch },
  ],
  clients,
} satisfies DriverFolder;
