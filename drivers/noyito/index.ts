/** What the noyito folder adds to the catalogue. */
import type { DriverFolder } from "../folder.ts";
import clients from "./clients.ts";
import { NoyitoPowerHID, NoyitoPowerSerial } from "./driver.ts";

const UPSTREAM = "jumpstarter_driver_noyito_relay.driver";

export default {
  drivers: [
    { name: "NoyitoPowerSerial", types: ["NoyitoPowerSerial", `${UPSTREAM}.NoyitoPowerSerial`], driver: NoyitoPowerSerial },
    { name: "NoyitoPowerHID", types: ["NoyitoPowerHID", `${UPSTREAM}.NoyitoPowerHID`], driver: NoyitoPowerHID },
  ],
  clients,
} satisfies DriverFolder;
