/**
 * The qemu folder's client classes and the client labels their drivers report:
 * apart from the drivers, so that `j` registers clients without loading drivers
 * (drivers/clients.ts).
 */
import type { DriverFolder } from "../folder.ts";
import { QemuClient } from "./client.ts";

export const QEMU_CLIENT = "jumpstarter_driver_qemu.client.QemuClient";

export default [
  { labels: [QEMU_CLIENT], client: QemuClient },
] satisfies DriverFolder["clients"];
