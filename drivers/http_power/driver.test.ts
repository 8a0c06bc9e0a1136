/** HttpPower over the wire against plugs that answer as Shelly's Gen1 and Gen2+ APIs do, and a generic web switch. */
import { expect, test } from "bun:test";
import { createServer, type Server, type Socket } from "node:net";
import { parseExporterConfig } from "../../src/common/exporter-config.ts";
import { serve, type Served } from "../../src/testing/serve.ts";
import { freePort } from "../../test/helpers.ts";
import { PowerClient } from "../power/client.ts";
import { POWER_CLIENT } from "../power/driver.ts";
import { cleanUpAfterEach } from "../testing/cleanup.ts";
import { failure } from "../testing/failure.ts";
import { HttpPower, type HttpPowerReading } from "./driver.ts";
import { shellyGen1, shellyGen2, type ShellySim } from "./shelly-sim.ts";

const cleanUp = cleanUpAfterEach();

async function sim<S extends ShellySim>(made: Promise<S>): Promise<S> {
  const s = await made;
  cleanUp(() => s.close());
  return s;
}

async function power(cfg: Record<string, unknown>): Promise<PowerClient> {
  const served: Served<PowerClient> = await serve<PowerClient>(HttpPower.create(cfg));
  cleanUp(() => served.close());
  return served.client;
}

const readAll = (client: PowerClient) => Array.fromAsync(client.read()) as Promise<HttpPowerReading[]>;

const paths = (s: ShellySim) => s.requests.map((r) => `${r.method} ${r.url}`);

test("Shelly Gen1: relay on and off by /relay/0?turn=, read from /meter/0 reports the power it has", async () => {
  const plug = await sim(shellyGen1());
  const client = await power({
    power_on: { url: `${plug.url}/relay/0?turn=on` },
    power_off: { url: `${plug.url}/relay/0?turn=off` },
    power_read: { url: `${plug.url}/meter/0` },
  });
  expect(client).toBeInstanceOf(PowerClient);
  expect(client.labels["jumpstarter.dev/client"]).toBe(POWER_CLIENT);
  await client.on();
  expect(plug.on).toEqual([true]);
  expect(await readAll(client)).toEqual([{ voltage: 0, current: 0, power: 26.1 }]);
  await client.off();
  expect(plug.on).toEqual([false]);
  expect(await readAll(client)).toEqual([{ voltage: 0, current: 0, power: 0 }]);
  expect(paths(plug)).toEqual(["GET /relay/0?turn=on", "GET /meter/0", "GET /relay/0?turn=off", "GET /meter/0"]);
});

test("Shelly Gen1 with Basic auth: the credentials go with every request; a wrong or missing password is said so", async () => {
  const plug = await sim(shellyGen1({ auth: { user: "admin", password: "s3cret" } }));
  const cfg = (auth?: unknown) => ({
    power_on: { url: `${plug.url}/relay/0?turn=on` },
    power_off: { url: `${plug.url}/relay/0?turn=off` },
    ...(auth ? { auth } : {}),
  });
  const good = await power(cfg({ basic: { user: "admin", password: "s3cret" } }));
  await good.on();
  expect(plug.on).toEqual([true]);
  await good.off();
  expect(plug.on).toEqual([false]);

  const wrong = await failure((await power(cfg({ basic: { user: "admin", password: "guess" } }))).on());
  expect(wrong.message).toBe(`on: Shelly at ${plug.url}/relay/0?turn=on answered power_on with HTTP 401 Unauthorized: 401 Unauthorized (check auth.basic.user and password)`);
  const none = await failure((await power(cfg())).on());
  expect(none.message).toEndWith("(it asks for Basic auth: set auth.basic.user and password)");
  expect(plug.on).toEqual([false]);

  // upstream's requests also takes credentials written into the URL
  const inUrl = await power({ power_on: { url: plug.url.replace("//", "//admin:s3cret@") + "/relay/0?turn=on" }, power_off: { url: `${plug.url}/relay/0?turn=off` } });
  await inUrl.on();
  expect(plug.on).toEqual([true]);
});

test("Shelly Gen2: Switch.Set by GET, Switch.GetStatus read as upstream's top-level voltage and current, plus apower", async () => {
  const plug = await sim(shellyGen2({ switches: 2 }));
  const client = await power({
    power_on: { url: `${plug.url}/rpc/Switch.Set?id=1&on=true` },
    power_off: { url: `${plug.url}/rpc/Switch.Set?id=1&on=false` },
    power_read: { url: `${plug.url}/rpc/Switch.GetStatus?id=1` },
  });
  await client.on();
  expect(plug.on).toEqual([false, true]);
  expect(await readAll(client)).toEqual([{ voltage: 231.4, current: 0.113, power: 26.1 }]);
  await client.off();
  expect(plug.on).toEqual([false, false]);
  expect(await readAll(client)).toEqual([{ voltage: 231.4, current: 0, power: 0 }]);
});

test("Shelly Gen2: JSON-RPC POSTed whole to /rpc; an error the device answers (with HTTP 200 or 500) reaches the client", async () => {
  const plug = await sim(shellyGen2());
  const frame = (on: boolean, id = 0) => JSON.stringify({ id: 1, method: "Switch.Set", params: { id, on } });
  const client = await power({
    power_on: { url: `${plug.url}/rpc`, method: "post", data: frame(true) },
    power_off: { url: `${plug.url}/rpc`, method: "POST", data: frame(false) },
  });
  await client.on();
  expect(plug.on).toEqual([true]);
  expect(plug.requests.at(-1)).toMatchObject({ method: "POST", url: "/rpc", body: frame(true) });
  await client.off();
  expect(plug.on).toEqual([false]);

  const badFrame = await failure((await power({ power_on: { url: `${plug.url}/rpc`, method: "POST", data: frame(true, 3) }, power_off: { url: `${plug.url}/rpc` } })).on());
  expect(badFrame.message).toBe(`on: Shelly at ${plug.url}/rpc refused power_on: Argument 'id', value 3 not found! (code -105)`);
  const badGet = await failure((await power({ power_on: { url: `${plug.url}/rpc/Switch.Set?id=3&on=true` }, power_off: { url: `${plug.url}/rpc` } })).on());
  expect(badGet.message).toBe(`on: Shelly at ${plug.url}/rpc/Switch.Set?id=3&on=true answered power_on with HTTP 500 Internal Server Error: Argument 'id', value 3 not found!`);
  expect(plug.on).toEqual([false]);
});

test("Shelly Gen2 with Digest auth (SHA-256, user admin): each request answers a fresh challenge; a wrong password is said so", async () => {
  const plug = await sim(shellyGen2({ password: "plug-pass" }));
  // The simulated plug speaks the Digest that curl speaks, so it is no private dialect of ours.
  const curl = Bun.spawn(["curl", "-s", "--max-time", "10", "--digest", "-u", "admin:plug-pass", `${plug.url}/rpc/Switch.GetStatus?id=0`], { stdout: "pipe" });
  expect(JSON.parse(await new Response(curl.stdout).text())).toMatchObject({ id: 0, output: false });

  const cfg = (password: string) => ({
    power_on: { url: `${plug.url}/rpc/Switch.Set?id=0&on=true` },
    power_off: { url: `${plug.url}/rpc/Switch.Set?id=0&on=false` },
    power_read: { url: `${plug.url}/rpc/Switch.GetStatus?id=0` },
    auth: { digest: { user: "admin", password } },
  });
  const client = await power(cfg("plug-pass"));
  const before = plug.requests.length;
  await client.on();
  expect(plug.on).toEqual([true]);
  expect(await readAll(client)).toEqual([{ voltage: 231.4, current: 0.113, power: 26.1 }]);
  await client.off();
  expect(plug.on).toEqual([false]);
  const sent = plug.requests.slice(before);
  expect(sent.map((r) => Boolean(r.authorization))).toEqual([false, true, false, true, false, true]);
  expect(sent[1]!.authorization).toMatch(/^Digest username="admin", realm="shellyplugsg3-8cbfea9f1a2c", uri="\/rpc\/Switch.Set\?id=0&on=true", algorithm=SHA-256, /);

  const wrong = await failure((await power(cfg("guess"))).on());
  expect(wrong.message).toBe(`on: Shelly at ${plug.url}/rpc/Switch.Set?id=0&on=true answered power_on with HTTP 401 Unauthorized: unauthorized (check auth.digest.user and password)`);
  const none = await failure((await power({ power_on: cfg("x").power_on, power_off: cfg("x").power_off })).on());
  expect(none.message).toEndWith("(it asks for Digest auth: set auth.digest.user and password)");
  expect(plug.on).toEqual([false]);
});

test("a generic web switch: method and body as configured, readings by dotted paths, upstream's reading rules", async () => {
  const seen: { method: string; url: string; body: string }[] = [];
  let answer = JSON.stringify({ StatusSNS: { ENERGY: { Voltage: 229, Current: 0.42, Power: 96 } } });
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch: async (req) => {
      seen.push({ method: req.method, url: new URL(req.url).pathname, body: await req.text() });
      return new Response(new URL(req.url).pathname === "/status" ? answer : "OK");
    },
  });
  cleanUp(() => server.stop(true));
  const base = `http://127.0.0.1:${server.port}`;
  const read = (extra: Record<string, string>) => ({ url: `${base}/status`, ...extra });
  const client = await power({
    name: "bench-pdu",
    power_on: { url: `${base}/api/on`, method: "PUT", data: "action=on" },
    power_off: { url: `${base}/api/off`, method: "POST", data: "action=off" },
    power_read: read({ voltage_path: "StatusSNS.ENERGY.Voltage", current_path: "StatusSNS.ENERGY.Current", power_path: "StatusSNS.ENERGY.Power" }),
  });
  await client.on();
  await client.off();
  expect(await readAll(client)).toEqual([{ voltage: 229, current: 0.42, power: 96 }]);
  expect(seen).toEqual([
    { method: "PUT", url: "/api/on", body: "action=on" },
    { method: "POST", url: "/api/off", body: "action=off" },
    { method: "GET", url: "/status", body: "" },
  ]);

  // a default key that is not there reads as 0 (not reported); a configured path that is not there is an error
  const noCurrent = await power({ power_on: { url: `${base}/on` }, power_off: { url: `${base}/off` }, power_read: read({}) });
  answer = JSON.stringify({ voltage: 230 });
  expect(await readAll(noCurrent)).toEqual([{ voltage: 230, current: 0 }]);
  const missing = await power({ power_on: { url: `${base}/on` }, power_off: { url: `${base}/off` }, power_read: read({ voltage_path: "meters.0.voltage" }) });
  expect((await failure(readAll(missing))).message).toBe("read: configured path 'meters.0.voltage' not found in the read answer");
  answer = "OK";
  expect((await failure(readAll(noCurrent))).message).toStartWith(`read: device at ${base}/status did not answer JSON to read (`);
  const unread = await power({ power_on: { url: `${base}/on` }, power_off: { url: `${base}/off` } });
  const e = await failure(readAll(unread));
  expect(e.name).toBe("InvalidArgumentError");
  expect(e.message).toStartWith("read: power_read is not configured for device: set power_read.url");
});

test("a device that is not there fails at first use, naming it and its URL; one that never answers times out", async () => {
  const closed = await freePort();
  const refused = await power({ power_on: { url: `http://127.0.0.1:${closed}/relay/0?turn=on` }, power_off: { url: `http://127.0.0.1:${closed}/relay/0?turn=off` } });
  const e = await failure(refused.on());
  expect(e.name).toBe("UnavailableError");
  expect(e.message).toBe(`on: cannot reach Shelly at http://127.0.0.1:${closed}/relay/0?turn=on: connection refused`);

  const silent = await blackHole();
  const slow = await power({ timeout: 0.3, power_on: { url: `http://127.0.0.1:${silent.port}/rpc/Switch.Set?id=0&on=true` }, power_off: { url: `http://127.0.0.1:${silent.port}/x` } });
  const started = performance.now();
  const t = await failure(slow.on());
  expect(performance.now() - started).toBeLessThan(5000);
  expect(t.name).toBe("DeadlineExceededError");
  expect(t.message).toBe(`on: Shelly at http://127.0.0.1:${silent.port}/rpc/Switch.Set?id=0&on=true did not answer power_on within 0.3 s (is it on the network? raise 'timeout' for a slow device)`);
  expect(silent.connections()).toBe(1);
});

test("config mistakes are reported at load, naming the key", async () => {
  const tree = (config: Record<string, unknown>) => parseExporterConfig({ export: { power: { type: "jumpstarter_driver_http_power.driver.HttpPower", config } } }, "lab.yaml");
  const ok = { url: "http://192.168.1.65/relay/0?turn=on" };
  const attempt = async (config: Record<string, unknown>) => (await failure(serve(tree(config)))).message;
  expect(await attempt({ power_on: { url: "192.168.1.65/relay/0?turn=on" }, power_off: ok })).toBe(
    'lab.yaml: export.power.config.power_on.url: expected an http:// or https:// URL, got "192.168.1.65/relay/0?turn=on"',
  );
  expect(await attempt({ power_on: ok, power_off: { url: "ftp://pdu/off" } })).toBe(
    'lab.yaml: export.power.config.power_off.url: expected an http:// or https:// URL, got "ftp://pdu/off"',
  );
  expect(await attempt({ power_on: ok })).toBe("lab.yaml: export.power.config.power_off: missing; expected a mapping");
  expect(await attempt({ power_on: ok, power_off: ok, auth: { basic: { user: "a" }, digest: { user: "admin" } } })).toBe(
    "lab.yaml: export.power.config: auth: give basic or digest, not both",
  );
  expect(await attempt({ power_on: { ...ok, method: "TURN ON" }, power_off: ok })).toBe(
    'lab.yaml: export.power.config: power_on.method: expected an HTTP method such as GET or POST, got "TURN ON"',
  );
  expect(await attempt({ power_on: ok, power_off: ok, timeout: 0 })).toStartWith("lab.yaml: export.power.config.timeout: expected a number of at least");
  expect(await attempt({ power_on: { ...ok, voltage: "x" }, power_off: ok })).toStartWith("lab.yaml: export.power.config.power_on.voltage: unknown key (known keys: url, method, data, voltage_path");
});

/** Accepts connections and never answers, like a device that hung. */
async function blackHole(): Promise<{ port: number; connections(): number }> {
  const sockets: Socket[] = [];
  const server: Server = createServer((s) => sockets.push(s));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  cleanUp(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return { port: (server.address() as { port: number }).port, connections: () => sockets.length };
}
