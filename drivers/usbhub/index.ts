/** What the usbhub folder adds to the catalogue (its client is the power client). */
import type { DriverFolder } from "../folder.ts";
import { UsbHubPort } from "./driver.ts";

export default {
  drivers: [{ name: "UsbHubPort", types: ["UsbHubPort"], driver: UsbHubPort }],
  clients: [],
} satisfies DriverFolder;
