/**
 * The built-in drivers and clients, gathered from each folder's index.ts. Roles
 * receive this from the CLI; nothing in src/ imports drivers/.
 */
import type { CatalogEntry } from "../src/driver/catalog.ts";
import type { DriverFolder } from "./folder.ts";
import composite from "./composite/index.ts";
import dutsim from "./dutsim/index.ts";
import gpiod from "./gpiod/index.ts";
import http from "./http/index.ts";
import httpPower from "./http_power/index.ts";
import network from "./network/index.ts";
import noyito from "./noyito/index.ts";
import power from "./power/index.ts";
import qemu from "./qemu/index.ts";
import sdwire from "./sdwire/index.ts";
import serial from "./serial/index.ts";
import shell from "./shell/index.ts";
import snmp from "./snmp/index.ts";
import storage from "./storage/index.ts";
import tasmota from "./tasmota/index.ts";
import tftp from "./tftp/index.ts";
import usbhub from "./usbhub/index.ts";
import yepkit from "./yepkit/index.ts";

const FOLDERS: DriverFolder[] = [composite, power, serial, network, shell, dutsim, storage, qemu, http, tftp, httpPower, tasmota, gpiod, snmp, usbhub, yepkit, noyito, sdwire];

export const BUILTIN_DRIVERS: CatalogEntry[] = FOLDERS.flatMap((f) =>
  f.drivers.map((d) => ({ ...d, source: "built-in" })),
);

/** Every folder's clients are in drivers/clients.ts too, where `j` registers them without the drivers. */
export { registerBuiltinClients } from "./clients.ts";
