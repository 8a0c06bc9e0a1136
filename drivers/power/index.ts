/** What the power folder adds to the catalogue. */
import type { DriverFolder } from "../folder.ts";
import clients from "./clients.ts";
import { MockPower } from "./driver.ts";

export default {
  drivers: [
    {
      name: "MockPower",
      types: ["MockPower", "jumpstarter_driver_power.driver.MockPower", "jumpstarter_driver_power.driver.SyncMockPower"],
      driver: MockPower,
    },
  ],
  clients,
} satisfies DriverFolder;
