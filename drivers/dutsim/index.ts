/**
 * What the dutsim folder adds to the catalogue. Its clients come from elsewhere:
 * the board is a composite, its children speak upstream's power and serial interfaces.
 */
import type { DriverFolder } from "../folder.ts";
import { DutSim } from "./driver.ts";

export default {
  drivers: [{ name: "DutSim", types: ["DutSim", "jmp.drivers.dutsim.DutSim"], driver: DutSim }],
  clients: [],
} satisfies DriverFolder;
