import { afterEach, expect, test } from "bun:test";
import { serve, type Served } from "../../src/testing/serve.ts";
import { MockPower } from "./driver.ts";
import { PowerClient } from "./client.ts";

let served: Served<PowerClient> | undefined;
afterEach(async () => served?.close());

test("MockPower switches and reports upstream's readings over the wire", async () => {
  const driver = new MockPower({});
  served = await serve<PowerClient>(driver);
  expect(served.client).toBeInstanceOf(PowerClient);
  await served.client.on();
  expect(driver.state).toBe("on");
  await served.client.off();
  expect(driver.state).toBe("off");
  const readings = [];
  for await (const r of served.client.read()) readings.push(r);
  expect(readings).toEqual([{ voltage: 0, current: 0 }, { voltage: 5, current: 2 }]);
});

test("cycle turns off, waits, and turns back on", async () => {
  const driver = new MockPower({});
  const seen: string[] = [];
  const on = driver.on.bind(driver);
  const off = driver.off.bind(driver);
  driver.on = async () => { seen.push(`on@${Date.now()}`); await on(); };
  driver.off = async () => { seen.push(`off@${Date.now()}`); await off(); };
  served = await serve<PowerClient>(driver);
  await served.client.cycle(0.2);
  expect(seen.map((s) => s.split("@")[0])).toEqual(["off", "on"]);
  const [offAt, onAt] = seen.map((s) => Number(s.split("@")[1]));
  expect(onAt! - offAt!).toBeGreaterThanOrEqual(190);
  expect(driver.state).toBe("on");
  await expect(served.client.cycle(-1)).rejects.toThrow("wait must be zero or more seconds");
});

test("driver logs reach the session log stream", async () => {
  const driver = new MockPower({});
  served = await serve<PowerClient>(driver);
  const logs: string[] = [];
  const abort = new AbortController();
  const { ConnectPortal } = await import("../../src/driver/portal.ts");
  const { sessionConnection } = await import("../../src/client/transport.ts");
  const portal = new ConnectPortal(sessionConnection({ host: served.socket }));
  const reading = (async () => {
    try {
      for await (const r of portal.exporter.logStream({}, { signal: abort.signal })) {
        logs.push(`${r.severity} ${r.driverType} ${r.message}`);
        if (logs.length === 2) break;
      }
    } catch {}
  })();
  await served.client.on();
  await served.client.off();
  await reading;
  abort.abort();
  expect(logs).toEqual(["INFO power power on", "INFO power power off"]);
});
