/** What the tftp folder adds to the catalogue. */
import type { DriverFolder } from "../folder.ts";
import { TftpServerClient } from "./client.ts";
import { Tftp, TFTP_CLIENT } from "./driver.ts";

export default {
  drivers: [{ name: "Tftp", types: ["Tftp", "jumpstarter_driver_tftp.driver.Tftp"], driver: Tftp }],
  clients: [{ labels: [TFTP_CLIENT], client: TftpServerClient }],
} satisfies DriverFolder;
