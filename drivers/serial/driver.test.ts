import { afterEach, expect, test } from "bun:test";
import fs from "node:fs";
import net from "node:net";
import { InvalidArgumentError, NotImplementedDriverError, UnavailableError, type ByteStream } from "@jumpstarter/driver";
import { eventually } from "../../src/common/eventually.ts";
import { parseExporterConfig } from "../../src/common/exporter-config.ts";
import { serve, type Served } from "../../src/testing/serve.ts";
import { SerialClient } from "./client.ts";
import { PySerial } from "./driver.ts";
import { ptyPeer, type PtyPeer } from "./pty-peer.ts";
import { outputSpeed } from "./termios.ts";

const cleanups: (() => unknown)[] = [];
let served: Served<SerialClient> | undefined;
afterEach(async () => {
  await served?.close();
  served = undefined;
  for (const c of cleanups.splice(0).reverse()) await c();
});

const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array) => new TextDecoder().decode(b);

async function peer(): Promise<PtyPeer> {
  const p = await ptyPeer();
  cleanups.push(() => p.close());
  return p;
}

type Reader = { read(): Promise<{ done: boolean; value?: Uint8Array }>; cancel(reason?: unknown): Promise<void> };

/** Reads exactly n bytes (or fails after the timeout with what came). */
async function readBytes(reader: Reader, n: number, timeoutMs = 5000): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let got = 0;
  const timer = setTimeout(() => void reader.cancel(new Error(`timed out with ${got} of ${n} bytes`)), timeoutMs);
  try {
    while (got < n) {
      const { value } = await reader.read();
      if (!value) throw new Error(`the stream ended after ${got} of ${n} bytes`);
      out.set(value.subarray(0, n - got), got);
      got += value.byteLength;
    }
    return out;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The error a call fails with. (Under bun test 1.4.5, `await expect(p).rejects` on a
 * call that goes through the in-process gRPC server never settles, so tests catch.)
 */
const failureOf = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e);

/** A stream open can fail at connect() or, once headers went out, at the first read. */
async function openFailure(client: SerialClient): Promise<unknown> {
  try {
    const stream = await client.open();
    await stream.readable.getReader().read();
  } catch (e) {
    return e;
  }
  return undefined;
}

const stty = (path: string) => Bun.spawnSync(["stty", "-F", path, "-a"]).stdout.toString();

async function servePty(p: PtyPeer, extra: Record<string, unknown> = {}): Promise<SerialClient> {
  served = await serve<SerialClient>(PySerial.create({ url: p.path, ...extra }));
  return served.client;
}

test("bytes flow both ways between the client and a real pty", async () => {
  const p = await peer();
  const client = await servePty(p);
  expect(client).toBeInstanceOf(SerialClient);
  const stream = await client.open();
  const writer = stream.writable.getWriter();
  const reader = stream.readable.getReader();
  await writer.write(text("AT\r\n"));
  expect(str(await p.received(4))).toBe("AT\r\n");
  p.send("OK\r\n");
  expect(str(await readBytes(reader, 4))).toBe("OK\r\n");
  await reader.cancel();
});

test("all 256 byte values pass unchanged in both directions", async () => {
  const p = await peer();
  const client = await servePty(p);
  const all = Uint8Array.from({ length: 256 }, (_, i) => i);
  const stream = await client.open();
  const writer = stream.writable.getWriter();
  const reader = stream.readable.getReader();
  await writer.write(all);
  expect(await p.received(256)).toEqual(all);
  p.send(all);
  expect(await readBytes(reader, 256)).toEqual(all);
  await reader.cancel();
});

test("a megabyte written faster than the pty drains arrives whole and in order", async () => {
  const p = await peer();
  const client = await servePty(p);
  const data = new Uint8Array(1024 * 1024);
  for (let i = 0; i < data.length; i += 65536) crypto.getRandomValues(data.subarray(i, i + 65536));
  const stream = await client.open();
  const writer = stream.writable.getWriter();
  for (let i = 0; i < data.length; i += 16384) await writer.write(data.subarray(i, i + 16384));
  expect(await p.received(data.length, 20000)).toEqual(data);
  await stream.readable.cancel();
});

test("the configured baudrate and raw mode reach the tty", async () => {
  const p = await peer();
  const client = await servePty(p, { baudrate: 9600 });
  const stream = await client.open();
  const settings = stty(p.path);
  expect(settings).toContain("speed 9600 baud");
  expect(settings).toMatch(/-icanon\b/);
  expect(settings).toMatch(/-echo\b/);
  expect(settings).toMatch(/-opost\b/);
  await stream.readable.cancel();
});

test("disable_hupcl clears HUPCL; by default it is left as it was", async () => {
  const p = await peer();
  expect(Bun.spawnSync(["stty", "-F", p.path, "hupcl"]).exitCode).toBe(0);
  const client = await servePty(p);
  const stream = await client.open();
  expect(stty(p.path)).toMatch(/(^|\s)hupcl\b/);
  await stream.readable.cancel();
  await served!.close();

  served = await serve<SerialClient>(PySerial.create({ url: p.path, baudrate: 57600, disable_hupcl: true }));
  const again = await served.client.open();
  expect(stty(p.path)).toMatch(/-hupcl\b/);
  expect(stty(p.path)).toContain("speed 57600 baud");
  await again.readable.cancel();
});

test("a baudrate without a B* code is set through termios2", async () => {
  const p = await peer();
  const client = await servePty(p, { baudrate: 74880 });
  const stream = await client.open();
  const fd = fs.openSync(p.path, fs.constants.O_RDONLY | fs.constants.O_NOCTTY | fs.constants.O_NONBLOCK);
  try {
    expect(await outputSpeed(fd, p.path)).toBe(74880);
  } finally {
    fs.closeSync(fd);
  }
  await stream.readable.cancel();
});

test("a pty has no modem lines: set_dtr/set_rts fail clearly, with or without a connection", async () => {
  const p = await peer();
  const client = await servePty(p);
  const dtr = await failureOf(client.setDtr(true));
  expect(dtr).toBeInstanceOf(NotImplementedDriverError);
  expect(String(dtr)).toContain(`setting DTR on failed: ${p.path} has no modem control lines (ENOTTY`);
  expect(String(await failureOf(client.setRts(false)))).toContain(`setting RTS off failed: ${p.path} has no modem control lines`);
  const stream = await client.open();
  const during = await failureOf(client.setDtr(false));
  expect(during).toBeInstanceOf(NotImplementedDriverError);
  expect(String(during)).toContain(`setting DTR off failed: ${p.path} has no modem control lines`);
  const bad = await failureOf(client.call("set_dtr", "yes"));
  expect(bad).toBeInstanceOf(InvalidArgumentError);
  expect(String(bad)).toContain(`set_dtr expects true or false, got "yes"`);
  await stream.readable.cancel();
});

test("one connection at a time; the port is released when the stream ends", async () => {
  const p = await peer();
  const client = await servePty(p);
  const first = await client.open();
  const refused = await openFailure(client);
  expect(refused).toBeInstanceOf(UnavailableError);
  expect(String(refused)).toContain(`${p.path} is already open in another connection`);
  await first.readable.cancel();
  await first.writable.abort().catch(() => {});

  // The exporter lets the port go once it has seen the stream end; until then a connect is refused.
  const second = await eventually(() => client.open(), { what: "the port to be released", interval: 20, timeout: 5000 });
  const reader = second.readable.getReader();
  p.send("x");
  expect(str(await readBytes(reader, 1))).toBe("x");
  await reader.cancel();
});

test("close() ends the open connection for its client", async () => {
  const p = await peer();
  const client = await servePty(p);
  const stream = await client.open();
  const reader = stream.readable.getReader();
  const ended = reader.read();
  await client.disconnect();
  expect((await ended).done).toBe(true);
  await client.disconnect();
});

test("the stream ends when the device goes away", async () => {
  const p = await peer();
  const client = await servePty(p);
  const stream = await client.open();
  const reader = stream.readable.getReader();
  await p.close();
  const end = await reader.read().catch((e: unknown) => e);
  expect(end instanceof Error || (end as { done: boolean }).done).toBe(true);
});

test("a missing device is a config error naming the path; with check_present false, connect fails instead", async () => {
  expect(() => PySerial.create({ url: "/dev/ttyNoSuchPort9" })).toThrow(
    "serial device /dev/ttyNoSuchPort9 does not exist (set check_present: false",
  );
  const config = parseExporterConfig(
    { export: { console: { type: "jumpstarter_driver_pyserial.driver.PySerial", config: { url: "/dev/ttyNoSuchPort9" } } } },
    "lab.yaml",
  );
  expect(String(await failureOf(serve(config)))).toMatch(/lab\.yaml.*export\.console\.config.*\/dev\/ttyNoSuchPort9 does not exist/);

  served = await serve<SerialClient>(PySerial.create({ url: "/dev/ttyNoSuchPort9", check_present: false }));
  const err = await openFailure(served.client);
  expect(err).toBeInstanceOf(UnavailableError);
  expect(String(err)).toContain("cannot open serial device /dev/ttyNoSuchPort9");
});

test("a file that is not a terminal is refused on connect", async () => {
  served = await serve<SerialClient>(PySerial.create({ url: "/dev/null" }));
  const err = await openFailure(served.client);
  expect(err).toBeInstanceOf(InvalidArgumentError);
  expect(String(err)).toContain("/dev/null is not a serial device");
});

test("config: defaults, unsupported url schemes and bad values are reported clearly", () => {
  const d = PySerial.create({ url: "loop://" });
  expect(d.config).toEqual({ url: "loop://", baudrate: 115200, check_present: true, cps: undefined, disable_hupcl: false });
  expect(() => PySerial.create({ url: "rfc2217://lab:7000" })).toThrow("the rfc2217:// scheme is not supported");
  expect(() => PySerial.create({ url: "socket://nohost" })).toThrow("expected socket://HOST:PORT");
  expect(() => PySerial.create({ url: "loop://", baudrate: 0 })).toThrow("baudrate: expected an integer of at least 1, got number 0");
  expect(() => PySerial.create({ url: "loop://", cps: -1 })).toThrow("cps: expected a number of at least 0");
  expect(() => PySerial.create({ url: "loop://", parity: "N" })).toThrow("parity: unknown key");
});

test("loop:// reads back what is written; each connection is its own loop", async () => {
  served = await serve<SerialClient>(PySerial.create({ url: "loop://" }));
  const a = await served.client.open();
  const b = await served.client.open();
  const aw = a.writable.getWriter();
  const ar = a.readable.getReader();
  await aw.write(text("hello"));
  expect(str(await readBytes(ar, 5))).toBe("hello");
  const bw = b.writable.getWriter();
  await bw.write(text("other"));
  expect(str(await readBytes(b.readable.getReader(), 5))).toBe("other");
  await aw.close();
  expect((await ar.read()).done).toBe(true);
  await served.client.setDtr(true);
  await served.client.setRts(false);
});

test("cps throttles what is sent to the device", async () => {
  served = await serve<SerialClient>(PySerial.create({ url: "loop://", cps: 20 }));
  const stream = await served.client.open();
  const reader = stream.readable.getReader();
  const started = performance.now();
  await stream.writable.getWriter().write(text("0123456789"));
  expect(str(await readBytes(reader, 10))).toBe("0123456789");
  // 10 characters at 20 per second: 9 gaps of 50 ms at least.
  expect(performance.now() - started).toBeGreaterThanOrEqual(440);
  await reader.cancel();
});

test("socket:// connects to a TCP serial server such as ser2net", async () => {
  const server = net.createServer((s) => s.pipe(s));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  cleanups.push(() => new Promise((r) => server.close(r)));
  const port = (server.address() as net.AddressInfo).port;
  served = await serve<SerialClient>(PySerial.create({ url: `socket://127.0.0.1:${port}` }));
  const stream = await served.client.open();
  await stream.writable.getWriter().write(text("ping"));
  expect(str(await readBytes(stream.readable.getReader(), 4))).toBe("ping");
  await served.client.disconnect();
});

test("two connects at the same moment: one gets the port, the other a clear refusal", async () => {
  const p = await peer();
  const client = await servePty(p);
  const streams: ByteStream[] = [];
  // A stream is open once connect() has answered: our exporter answers only after the driver opened the port.
  const attempt = () => client.open().then((stream) => {
    streams.push(stream);
    return "open";
  }, (e: unknown) => String(e));
  const outcomes = await Promise.all([attempt(), attempt()]);
  expect(outcomes.filter((o) => o === "open")).toHaveLength(1);
  expect(outcomes.find((o) => o !== "open")).toContain(`${p.path} is already open in another connection`);
  // And the one that got it carries the device's bytes.
  const reader = streams[0]!.readable.getReader();
  p.send("x");
  expect(str(await readBytes(reader, 1))).toBe("x");
  await reader.cancel();
});
