/**
 * What the qemu folder adds to the catalogue. The board's children use clients
 * from elsewhere: power, serial, network, and the storage folder's flasher client.
 */
import type { DriverFolder } from "../folder.ts";
import clients from "./clients.ts";
import { Qemu } from "./driver.ts";

export default {
  drivers: [{ name: "Qemu", types: ["Qemu", "jumpstarter_driver_qemu.driver.Qemu"], driver: Qemu }],
  clients,
} satisfies DriverFolder;
