import { expect, test } from "bun:test";
import { DriverClient } from "./client.ts";
import { AllowList, ClientRegistry } from "./registry.ts";

class Mine extends DriverClient {}
class Theirs extends DriverClient {}

test("built-in clients are always used; others only where the allow-list permits", () => {
  const registry = new ClientRegistry();
  registry.register(["jumpstarter_driver_power.client.PowerClient"], Mine);
  registry.register(["acme_relay.client.RelayClient"], Theirs, { builtin: false });
  const none = new AllowList([]);
  expect(registry.lookup("jumpstarter_driver_power.client.PowerClient", none)).toBe(Mine);
  expect(registry.lookup("acme_relay.client.RelayClient", none)).toBeUndefined();
  expect(registry.lookup("acme_relay.client.RelayClient", new AllowList(["acme_*"]))).toBe(Theirs);
  expect(registry.lookup("acme_relay.client.RelayClient", new AllowList(["UNSAFE"]))).toBe(Theirs);
  expect(registry.lookup("unknown.Client", new AllowList([], true))).toBeUndefined();
});

test("JMP_DRIVERS_ALLOW is a comma-separated list of globs", () => {
  const allow = AllowList.fromEnv("acme_*, other.pkg.?lient", new AllowList([]));
  expect(allow.allows("acme_relay.client.RelayClient")).toBe(true);
  expect(allow.allows("other.pkg.Client")).toBe(true);
  expect(allow.allows("evil.Client")).toBe(false);
  expect(AllowList.fromEnv(undefined, new AllowList(["x"])).allows("x")).toBe(true);
});
