/** What the tftp folder adds to the catalogue. */
import type { DriverFolder } from "../folder.ts";
import clients from "./clients.ts";
import { Tftp } from "./driver.ts";

export default {
  drivers: [{ name: "Tftp", types: ["Tftp", "jumpstarter_driver_tftp.driver.Tftp"], driver: Tftp }],
  clients,
} satisfies DriverFolder;
