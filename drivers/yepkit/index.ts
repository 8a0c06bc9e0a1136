/** What the yepkit folder adds to the catalogue (its client is the power client). */
import type { DriverFolder } from "../folder.ts";
import { Ykush } from "./driver.ts";

export default {
  drivers: [{ name: "Ykush", types: ["Ykush", "jumpstarter_driver_yepkit.driver.Ykush"], driver: Ykush }],
  clients: [],
} satisfies DriverFolder;
