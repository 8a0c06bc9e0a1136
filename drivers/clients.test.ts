/**
 * drivers/clients.ts (what `j` and the library register) against drivers/catalog.ts's
 * folders (what an exporter loads): every client any folder's index.ts lists is
 * registered, for each of its labels, as the same class.
 */
import { expect, test } from "bun:test";
import { readdirSync, existsSync } from "node:fs";
import { join } from "node:path";
import { AllowList, ClientRegistry, DEFAULT_ALLOW } from "../src/driver/registry.ts";
import type { DriverFolder } from "./folder.ts";
import { registerBuiltinClients } from "./clients.ts";

test("every folder's clients are in drivers/clients.ts, label for label", async () => {
  const registry = registerBuiltinClients(new ClientRegistry());
  const allowAll = AllowList.fromEnv("UNSAFE", DEFAULT_ALLOW);
  const folders = readdirSync(import.meta.dir).filter((d) => existsSync(join(import.meta.dir, d, "index.ts")));
  let listed = 0;
  for (const folder of folders) {
    const { default: f } = (await import(join(import.meta.dir, folder, "index.ts"))) as { default: DriverFolder };
    for (const c of f.clients) {
      for (const label of c.labels) {
        listed++;
        expect({ folder, label, client: registry.lookup(label, allowAll)?.name }).toEqual({ folder, label, client: c.client.name });
      }
    }
  }
  // The walk found the folders (a check that it checks anything): composite, power, storage… at least a dozen labels.
  expect(listed).toBeGreaterThanOrEqual(12);
  expect(registry.labels().length).toBe(listed);
});
