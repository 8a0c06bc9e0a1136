/** What the tasmota folder adds to the catalogue (its client is the power folder's). */
import type { DriverFolder } from "../folder.ts";
import { TasmotaPower } from "./driver.ts";

export default {
  drivers: [{ name: "TasmotaPower", types: ["TasmotaPower", "jumpstarter_driver_tasmota.driver.TasmotaPower"], driver: TasmotaPower }],
  clients: [],
} satisfies DriverFolder;
