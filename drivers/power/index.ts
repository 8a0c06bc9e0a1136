/** What the power folder adds to the catalogue. */
import type { DriverFolder } from "../folder.ts";
import { PowerClient } from "./client.ts";
import { MockPower, POWER_CLIENT } from "./driver.ts";

export default {
  drivers: [
    {
      name: "MockPower",
      types: ["MockPower", "jumpstarter_driver_power.driver.MockPower", "jumpstarter_driver_power.driver.SyncMockPower"],
      driver: MockPower,
    },
  ],
  clients: [{ labels: [POWER_CLIENT, "jumpstarter_driver_power.client.VirtualPowerClient"], client: PowerClient }],
} satisfies DriverFolder;
