/** TasmotaPower over the wire, through Debian's mosquitto, against a simulated Tasmota plug. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { eventually } from "../../src/common/eventually.ts";
import { parseExporterConfig } from "../../src/common/exporter-config.ts";
import { serve, type Served } from "../../src/testing/serve.ts";
import { PowerClient } from "../power/client.ts";
import { POWER_CLIENT } from "../power/driver.ts";
import { cleanUpAfterEach } from "../testing/cleanup.ts";
import { failure } from "../testing/failure.ts";
import { TasmotaPower, type TasmotaReading } from "./driver.ts";
import { type Mosquitto, mosquittoMissing, startMosquitto } from "./mosquitto.ts";
import { type TasmotaPlug, tasmotaPlug } from "./plug-sim.ts";

if (mosquittoMissing) console.warn(`TasmotaPower broker tests skipped: ${mosquittoMissing}`);

const cleanUp = cleanUpAfterEach();

async function plug(url: string, opts: Parameters<typeof tasmotaPlug>[1] = {}): Promise<TasmotaPlug> {
  const p = await tasmotaPlug(url, opts);
  cleanUp(() => p.close());
  return p;
}

async function power(cfg: Record<string, unknown>): Promise<Served<PowerClient>> {
  const served = await serve<PowerClient>(TasmotaPower.create({ tls: false, timeout: 5, ...cfg }));
  cleanUp(() => served.close());
  return served;
}

const readAll = (client: PowerClient) => Array.fromAsync(client.read()) as Promise<TasmotaReading[]>;

describe.skipIf(Boolean(mosquittoMissing))("with a mosquitto broker", () => {
  let broker: Mosquitto;
  let url = "";
  beforeAll(async () => {
    broker = await startMosquitto({ websockets: true, unix: true, tls: true });
    url = `mqtt://127.0.0.1:${broker.port}`;
  });
  afterAll(async () => broker?.close());

  test("upstream's config: POWER ON/OFF on cmnd_topic, done when stat_topic reports it; the power client's label", async () => {
    const p = await plug(url);
    const { client } = await power({ host: "127.0.0.1", port: broker.port, cmnd_topic: "cmnd/tasmota_6990F2/POWER", stat_topic: "stat/tasmota_6990F2/POWER" });
    expect(client).toBeInstanceOf(PowerClient);
    expect(client.labels["jumpstarter.dev/client"]).toBe(POWER_CLIENT);
    await client.on();
    expect(p.on).toEqual([true]);
    await client.off();
    expect(p.on).toEqual([false]);
    expect(p.commands).toEqual(["POWER ON", "POWER OFF"]);
  });

  test("topic shorthand; read asks STATUS 10 and reports the meter's voltage, current and power", async () => {
    const p = await plug(url, { topic: "bench_plug_3" });
    const { client } = await power({ host: "127.0.0.1", port: broker.port, topic: "bench_plug_3" });
    expect(await readAll(client)).toEqual([{ voltage: 230, current: 0, power: 0 }]);
    await client.on();
    expect(await readAll(client)).toEqual([{ voltage: 230, current: 0.25, power: 57 }]);
    expect(p.commands).toEqual(["STATUS 10", "POWER ON", "STATUS 10"]);
  });

  test("a relay of a multi-relay device: POWER2, its state in RESULT, its channel of the meter", async () => {
    const p = await plug(url, { topic: "strip", relays: 3 });
    const { client } = await power({ host: "127.0.0.1", port: broker.port, cmnd_topic: "cmnd/strip/POWER2", stat_topic: "stat/strip/POWER2" });
    await client.on();
    expect(p.on).toEqual([false, true, false]);
    expect(await readAll(client)).toEqual([{ voltage: 230, current: 0.25, power: 57 }]);
    await client.off();
    expect(p.on).toEqual([false, false, false]);
  });

  test("only a report after the command counts: an ON the plug already had does not answer a new ON", async () => {
    const p = await plug(url, { topic: "stale" });
    const { client } = await power({ host: "127.0.0.1", port: broker.port, topic: "stale", timeout: 0.5 });
    p.on[0] = true;
    await p.sendTeleState();
    // The plug answers in order: once STATUS 10 is answered, its earlier ON report has reached the driver.
    await readAll(client);
    p.mute(true);
    const e = await failure(client.on());
    expect(e.name).toBe("DeadlineExceededError");
    expect(e.message).toBe(
      "on: the Tasmota device on cmnd/stale/POWER did not answer POWER ON on stat/stale/POWER, stat/stale/RESULT or tele/stale/STATE within 0.5 s; " +
        `its last will says Online (is it online and subscribed at ${url}?)`,
    );
    // telemetry counts as a report too
    p.mute(false);
    p.stuck("OFF");
    const turning = client.on();
    const late = failure(turning);
    await eventually(() => expect(p.commands.at(-1)).toBe("POWER ON"), { what: "the plug to get POWER ON" });
    p.stuck(undefined);
    p.on[0] = true;
    await p.sendTeleState();
    expect(await Promise.race([turning.then(() => "done"), late.then((x) => x.message)])).toBe("done");
  });

  test("a relay that reports the other state, and a plug that lost power, fail with what they said", async () => {
    const p = await plug(url, { topic: "held" });
    const { client } = await power({ host: "127.0.0.1", port: broker.port, topic: "held", timeout: 0.5 });
    p.stuck("OFF");
    const held = await failure(client.on());
    expect(held.message).toContain("did not answer POWER ON on stat/held/POWER, stat/held/RESULT or tele/held/STATE within 0.5 s; it reported POWER OFF instead");
    p.unplug();
    const gone = await eventually(async () => {
      const e = await failure(client.off());
      expect(e.message).toContain("its last will says Offline");
      return e;
    }, { what: "the broker to publish the plug's last will" });
    expect(gone.name).toBe("DeadlineExceededError");
  });

  test("a plug without an energy meter says so when read", async () => {
    await plug(url, { topic: "no_meter", energy: false });
    const { client } = await power({ host: "127.0.0.1", port: broker.port, topic: "no_meter" });
    const e = await failure(readAll(client));
    expect(e.name).toBe("NotImplementedDriverError");
    expect(e.message).toBe("read: the Tasmota device on cmnd/no_meter/POWER has no energy meter (its STATUS 10 answer on stat/no_meter/STATUS10 has no ENERGY)");
  });

  test("over websockets and over the broker's Unix socket", async () => {
    const p = await plug(url, { topic: "via" });
    const ws = await power({ host: "127.0.0.1", port: broker.wsPort, transport: "websockets", topic: "via" });
    await ws.client.on();
    expect(p.on).toEqual([true]);
    const unix = await power({ host: broker.socket, transport: "unix", topic: "via" });
    await unix.client.off();
    expect(p.on).toEqual([false]);
  });

  test("over TLS (upstream's default): the broker's certificate checked against ca; without it, the error says why", async () => {
    const p = await plug(url, { topic: "secure" });
    const { client } = await power({ host: "127.0.0.1", port: broker.tlsPort, tls: true, ca: broker.ca, topic: "secure" });
    await client.on();
    expect(p.on).toEqual([true]);
    const untrusted = await power({ host: "127.0.0.1", port: broker.tlsPort, tls: true, topic: "secure" });
    const e = await failure(untrusted.client.off());
    expect(e.name).toBe("UnavailableError");
    expect(e.message).toMatch(new RegExp(`^off: cannot reach the MQTT broker at mqtts://127.0.0.1:${broker.tlsPort}: .*self[- ]signed certificate`));
    expect(p.on).toEqual([true]);
  });

  test("as upstream, a plug the session switched is off when the session ends; one it never touched is left alone", async () => {
    const p = await plug(url, { topic: "lease_end" });
    const used = await power({ host: "127.0.0.1", port: broker.port, topic: "lease_end" });
    await used.client.on();
    expect(p.on).toEqual([true]);
    await used.close();
    expect(p.on).toEqual([false]);
    expect(p.commands).toEqual(["POWER ON", "POWER OFF"]);
    const untouched = await power({ host: "127.0.0.1", port: broker.port, topic: "lease_end" });
    await untouched.close();
    expect(p.commands).toEqual(["POWER ON", "POWER OFF"]);
  });
});

describe.skipIf(Boolean(mosquittoMissing))("broker trouble", () => {
  test("a broker that is not running fails the first call at once, naming it", async () => {
    const broker = await startMosquitto();
    cleanUp(() => broker.close());
    await broker.stop();
    const { client } = await power({ host: "127.0.0.1", port: broker.port, topic: "x" });
    const started = performance.now();
    const e = await failure(client.on());
    expect(performance.now() - started).toBeLessThan(3000);
    expect(e.name).toBe("UnavailableError");
    expect(e.message).toBe(`on: cannot reach the MQTT broker at mqtt://127.0.0.1:${broker.port}: connection refused`);
  });

  test("a broker that requires a login: the right one works, a wrong one is refused with what to check", async () => {
    const broker = await startMosquitto({ users: { plug: "plug-pass", lab: "lab-pass" } });
    cleanUp(() => broker.close());
    const p = await plug(`mqtt://plug:plug-pass@127.0.0.1:${broker.port}`, { topic: "locked" });
    const good = await power({ host: "127.0.0.1", port: broker.port, topic: "locked", username: "lab", password: "lab-pass" });
    await good.client.on();
    expect(p.on).toEqual([true]);
    const bad = await power({ host: "127.0.0.1", port: broker.port, topic: "locked", username: "lab", password: "nope" });
    const e = await failure(bad.client.off());
    expect(e.message).toBe(`off: cannot reach the MQTT broker at mqtt://127.0.0.1:${broker.port}: the broker refused the connection: Not authorized (check username and password)`);
    expect(p.on).toEqual([true]);
  });

  test("the broker restarting: a call while it is down fails without being sent later; after it is back, calls work again", async () => {
    const broker = await startMosquitto();
    cleanUp(() => broker.close());
    const url = `mqtt://127.0.0.1:${broker.port}`;
    const p = await plug(url, { topic: "restart" });
    const { client } = await power({ host: "127.0.0.1", port: broker.port, topic: "restart", timeout: 1 });
    await client.on();
    await broker.stop();
    const down = await failure(client.off());
    // Whether the driver has seen the connection drop before the call (then it waits for the broker) or not
    // (then the command is lost with the connection) is a race of the test; the user is told either way.
    expect(down.message).toMatch(
      new RegExp(`^off: (lost the MQTT broker at ${url} (and could not reconnect within 1 s( \\(.+\\))?; POWER OFF was not sent|while sending POWER OFF)|the Tasmota device on cmnd/restart/POWER did not answer POWER OFF .* within 1 s)`),
    );
    await broker.start();
    // Both the plug and the driver reconnect on their own (the plug's will and subscriptions come back with it).
    await eventually(async () => {
      await client.off();
    }, { what: "the driver and the plug to reconnect", timeout: 15_000 });
    expect(p.on).toEqual([false]);
    // The command of the failed call was not delivered late, after the reconnect.
    expect(p.commands).toEqual(["POWER ON", "POWER OFF"]);
  });
});

test("config mistakes are reported at load, naming the key", async () => {
  const tree = (config: Record<string, unknown>) => parseExporterConfig({ export: { power: { type: "jumpstarter_driver_tasmota.driver.TasmotaPower", config } } }, "lab.yaml");
  const attempt = async (config: Record<string, unknown>) => (await failure(serve(tree(config)))).message;
  expect(await attempt({ host: "broker", stat_topic: "stat/plug/POWER" })).toBe(
    "lab.yaml: export.power.config: cmnd_topic: missing; give cmnd_topic and stat_topic (e.g. cmnd/tasmota_6990F2/POWER and stat/tasmota_6990F2/POWER), or topic (e.g. tasmota_6990F2)",
  );
  expect(await attempt({ host: "broker" })).toStartWith("lab.yaml: export.power.config: cmnd_topic: missing;");
  expect(await attempt({ host: "broker", cmnd_topic: "cmnd/+/POWER", stat_topic: "stat/plug/POWER" })).toBe(
    'lab.yaml: export.power.config.cmnd_topic: expected an MQTT topic name (no + or # wildcards) such as cmnd/tasmota_6990F2/POWER, got "cmnd/+/POWER"',
  );
  expect(await attempt({ host: "broker", topic: "plug/#" })).toBe(
    'lab.yaml: export.power.config.topic: expected an MQTT topic name (no + or # wildcards) such as tasmota_6990F2, got "plug/#"',
  );
  expect(await attempt({ host: "broker", topic: "plug", cmnd_topic: "cmnd/plug/POWER" })).toBe("lab.yaml: export.power.config: topic: give topic, or cmnd_topic and stat_topic, not both");
  expect(await attempt({ topic: "plug" })).toBe("lab.yaml: export.power.config.host: missing; expected a non-empty string");
  expect(await attempt({ host: "broker", topic: "plug", transport: "quic" })).toBe('lab.yaml: export.power.config.transport: expected one of "tcp", "websockets", "unix", got string "quic"');
  const dir = mkdtempSync(join(tmpdir(), "jmp-tasmota-"));
  cleanUp(() => rmSync(dir, { recursive: true, force: true }));
  expect(await attempt({ host: "broker", topic: "plug", ca: join(dir, "ca.pem") })).toBe(`lab.yaml: export.power.config: ca: no such file: ${join(dir, "ca.pem")}`);
});
