/** What the sdwire folder adds to the catalogue (its client is the storage mux flasher client). */
import type { DriverFolder } from "../folder.ts";
import { SDWire } from "./driver.ts";

export default {
  drivers: [{ name: "SDWire", types: ["SDWire", "jumpstarter_driver_sdwire.driver.SDWire"], driver: SDWire }],
  clients: [],
} satisfies DriverFolder;
