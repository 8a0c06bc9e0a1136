/**
 * The built-in client classes alone, gathered from each folder's clients.ts: what
 * `j` registers. The drivers they talk to stay unloaded (drivers/catalog.ts loads
 * both, for an exporter): a `j` command loaded 118 source files for its catalogue,
 * and its clients need 45 of them.
 */
import type { ClientRegistry } from "../src/driver/registry.ts";
import type { DriverFolder } from "./folder.ts";
import composite from "./composite/clients.ts";
import gpiod from "./gpiod/clients.ts";
import http from "./http/clients.ts";
import network from "./network/clients.ts";
import noyito from "./noyito/clients.ts";
import power from "./power/clients.ts";
import qemu from "./qemu/clients.ts";
import serial from "./serial/clients.ts";
import shell from "./shell/clients.ts";
import snmp from "./snmp/clients.ts";
import storage from "./storage/clients.ts";
import tftp from "./tftp/clients.ts";

const CLIENTS: DriverFolder["clients"] = [
  ...composite, ...power, ...serial, ...network, ...shell, ...storage, ...qemu, ...http, ...tftp, ...gpiod, ...snmp, ...noyito,
];

export function registerBuiltinClients(registry: ClientRegistry): ClientRegistry {
  for (const c of CLIENTS) registry.register(c.labels, c.client);
  return registry;
}
