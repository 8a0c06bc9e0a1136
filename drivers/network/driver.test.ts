import { afterEach, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { InvalidArgumentError, MethodNotFoundError, UnavailableError } from "@jumpstarter/driver";
import { parseExporterConfig } from "../../src/common/exporter-config.ts";
import { serve, type Served } from "../../src/testing/serve.ts";
import { NetworkClient } from "./client.ts";
import { EchoNetwork, TcpNetwork, UdpNetwork, UnixNetwork } from "./driver.ts";
import { echoServer, freePort, readBytes, roundTrip, udpEchoServer } from "./test-servers.ts";

const cleanups: (() => unknown)[] = [];
let served: Served<NetworkClient> | undefined;
afterEach(async () => {
  await served?.close();
  served = undefined;
  for (const c of cleanups.splice(0).reverse()) await c();
});

const text = (s: string) => new TextEncoder().encode(s);

/**
 * What a client sees when the driver cannot open its endpoint. The error may come
 * from connect() or, as the session sends stream headers before it knows, from
 * the first read; either way it must be the UnavailableError.
 */
async function openFailure(client: NetworkClient): Promise<unknown> {
  try {
    const stream = await client.connect();
    await stream.readable.getReader().read();
  } catch (e) {
    return e;
  }
  return undefined;
}
const str = (b: Uint8Array) => new TextDecoder().decode(b);

test("TcpNetwork carries bytes to a real TCP server and back", async () => {
  const server = await echoServer();
  cleanups.push(() => server.close());
  served = await serve<NetworkClient>(TcpNetwork.create({ host: "127.0.0.1", port: server.port }));
  expect(served.client).toBeInstanceOf(NetworkClient);
  const stream = await served.client.connect();
  const writer = stream.writable.getWriter();
  const reader = stream.readable.getReader();
  await writer.write(text("hello"));
  expect(str(await readBytes(reader, 5))).toBe("hello");
  await writer.write(text(" again"));
  expect(str(await readBytes(reader, 6))).toBe(" again");
  await writer.close();
  expect((await reader.read()).done).toBe(true);
  expect(server.accepted).toBe(1);
});

test("TcpNetwork round-trips 1 MiB intact", async () => {
  const server = await echoServer();
  cleanups.push(() => server.close());
  served = await serve<NetworkClient>(TcpNetwork.create({ host: "127.0.0.1", port: server.port }));
  const data = crypto.getRandomValues(new Uint8Array(1024 * 1024 / 2));
  const payload = new Uint8Array(1024 * 1024);
  payload.set(data, 0);
  payload.set(data.reverse(), data.byteLength);
  const back = await roundTrip(await served.client.connect(), payload);
  expect(back.byteLength).toBe(payload.byteLength);
  expect(Buffer.compare(back, payload)).toBe(0);
});

test("closing the client's writable is a FIN: the server still answers afterwards", async () => {
  const server = await echoServer({}, true);
  cleanups.push(() => server.close());
  served = await serve<NetworkClient>(TcpNetwork.create({ host: "127.0.0.1", port: server.port }));
  const stream = await served.client.connect();
  const writer = stream.writable.getWriter();
  await writer.write(text("twelve bytes"));
  await writer.close();
  expect(str(new Uint8Array(await new Response(stream.readable).arrayBuffer()))).toBe("got 12 bytes");
});

test("a refused TCP connection fails connect quickly with UnavailableError naming host:port", async () => {
  const port = await freePort();
  served = await serve<NetworkClient>(TcpNetwork.create({ host: "127.0.0.1", port }));
  const started = Date.now();
  const err = await openFailure(served.client);
  expect(err).toBeInstanceOf(UnavailableError);
  expect((err as Error).message).toContain(`127.0.0.1:${port}`);
  expect((err as Error).message).toContain("connection refused");
  expect(Date.now() - started).toBeLessThan(2000);
});

test("an unreachable network fails fast and names the endpoint", async () => {
  // 192.0.2.0/24 (TEST-NET-1) is never routed: either the network says so at once
  // or the handshake goes unanswered until connect_timeout.
  served = await serve<NetworkClient>(TcpNetwork.create({ host: "192.0.2.1", port: 9, connect_timeout: 0.3 }));
  const started = Date.now();
  const err = await openFailure(served.client);
  expect(err).toBeInstanceOf(UnavailableError);
  expect((err as Error).message).toContain("192.0.2.1:9");
  expect(Date.now() - started).toBeLessThan(2000);
});

test("a handshake nobody answers fails after connect_timeout instead of hanging", async () => {
  const port = await unansweredPort();
  served = await serve<NetworkClient>(TcpNetwork.create({ host: "127.0.0.1", port, connect_timeout: 0.3 }));
  const started = Date.now();
  const err = await openFailure(served.client);
  expect(err).toBeInstanceOf(UnavailableError);
  expect((err as Error).message).toContain(`cannot connect to 127.0.0.1:${port}: no answer within 0.3 s`);
  expect(Date.now() - started).toBeGreaterThanOrEqual(290);
  expect(Date.now() - started).toBeLessThan(2000);
});

/**
 * A port whose listener never accepts and whose backlog is already full, so the
 * kernel drops further SYNs. Node servers always accept, hence a Python listener.
 */
async function unansweredPort(): Promise<number> {
  const script = [
    "import socket, sys",
    "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(0)",
    "filler = socket.create_connection(s.getsockname())",
    "print(s.getsockname()[1], flush=True)",
    "sys.stdin.read()",
  ].join("\n");
  const py = Bun.spawn(["python3", "-c", script], { stdin: "pipe", stdout: "pipe" });
  cleanups.push(() => py.kill());
  const line = await py.stdout.getReader().read();
  return Number(new TextDecoder().decode(line.value).trim());
}

test("a connection the endpoint resets ends the client's stream with UnavailableError naming it", async () => {
  const server = await echoServer();
  cleanups.push(() => server.close());
  served = await serve<NetworkClient>(TcpNetwork.create({ host: "127.0.0.1", port: server.port }));
  const stream = await served.client.connect();
  const reader = stream.readable.getReader();
  await stream.writable.getWriter().write(text("ping"));
  expect(str(await readBytes(reader, 4))).toBe("ping");
  for (const socket of server.open) socket.resetAndDestroy();
  const err = await reader.read().catch((e: unknown) => e);
  expect(err).toBeInstanceOf(UnavailableError);
  expect((err as Error).message).toContain(`127.0.0.1:${server.port}: connection reset by peer`);
});

test("address() gives tcp://host:port with the host resolved, brackets for IPv6, and obeys enable_address", async () => {
  served = await serve<NetworkClient>(TcpNetwork.create({ host: "127.0.0.1", port: 2222 }));
  expect(await served.client.address()).toBe("tcp://127.0.0.1:2222");
  await served.close();
  served = await serve<NetworkClient>(TcpNetwork.create({ host: "localhost", port: 22 }));
  expect(await served.client.address()).toMatch(/^tcp:\/\/(127\.0\.0\.1|\[::1\]):22$/);
  await served.close();
  served = await serve<NetworkClient>(TcpNetwork.create({ host: "::1", port: 80 }));
  expect(await served.client.address()).toBe("tcp://[::1]:80");
  await served.close();
  served = await serve<NetworkClient>(TcpNetwork.create({ host: "10.0.0.5", port: 22, enable_address: false }));
  const err = await served.client.address().catch((e: unknown) => e);
  expect(err).toBeInstanceOf(InvalidArgumentError);
  expect((err as Error).message).toContain("enable_address");
});

test("UdpNetwork: each chunk written is one datagram, each datagram one chunk read", async () => {
  const server = await udpEchoServer();
  cleanups.push(() => server.close());
  served = await serve<NetworkClient>(UdpNetwork.create({ host: "127.0.0.1", port: server.port }));
  expect(await served.client.address()).toBe(`udp://127.0.0.1:${server.port}`);
  const stream = await served.client.connect();
  const writer = stream.writable.getWriter();
  const reader = stream.readable.getReader();
  await writer.write(text("first"));
  expect(str((await reader.read()).value!)).toBe("FIRST");
  await writer.write(text("second datagram"));
  await writer.write(text("third"));
  expect(str((await reader.read()).value!)).toBe("SECOND DATAGRAM");
  expect(str((await reader.read()).value!)).toBe("THIRD");
  await reader.cancel();
});

test("UdpNetwork reports a closed port as UnavailableError naming host:port", async () => {
  const port = await freePort();
  served = await serve<NetworkClient>(UdpNetwork.create({ host: "127.0.0.1", port }));
  const stream = await served.client.connect();
  const writer = stream.writable.getWriter();
  await writer.write(text("anyone?"));
  const err = await stream.readable.getReader().read().catch((e: unknown) => e);
  expect(err).toBeInstanceOf(UnavailableError);
  expect((err as Error).message).toContain(`127.0.0.1:${port}`);
});

test("UnixNetwork talks to a real Unix socket server, and names a missing socket", async () => {
  const dir = mkdtempSync(join(tmpdir(), "jmp-net-test-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const server = await echoServer({ path: join(dir, "echo.sock") }, true);
  cleanups.push(() => server.close());
  served = await serve<NetworkClient>(UnixNetwork.create({ path: server.path }));
  const back = await roundTrip(await served.client.connect(), text("over unix"));
  expect(str(back)).toBe("got 9 bytes");
  const err = await served.client.address().catch((e: unknown) => e);
  expect(err).toBeInstanceOf(MethodNotFoundError);
  await served.close();

  served = await serve<NetworkClient>(UnixNetwork.create({ path: join(dir, "missing.sock") }));
  const missing = await openFailure(served.client);
  expect(missing).toBeInstanceOf(UnavailableError);
  expect((missing as Error).message).toContain(join(dir, "missing.sock"));
});

test("EchoNetwork sends every byte back and ends when the client does", async () => {
  served = await serve<NetworkClient>(new EchoNetwork({}));
  const back = await roundTrip(await served.client.connect(), text("echo, echo"));
  expect(str(back)).toBe("echo, echo");
});

test("ending the session closes connections the driver opened", async () => {
  const server = await echoServer();
  cleanups.push(() => server.close());
  served = await serve<NetworkClient>(TcpNetwork.create({ host: "127.0.0.1", port: server.port }));
  const stream = await served.client.connect();
  await stream.writable.getWriter().write(text("x"));
  const socket = await server.firstConnection;
  const closed = new Promise((resolve) => socket.once("close", resolve));
  await served.close();
  await closed;
  expect(server.open.size).toBe(0);
});

test("exporter configs load with upstream type paths and short names; bad config names the key", async () => {
  const server = await echoServer();
  cleanups.push(() => server.close());
  const config = parseExporterConfig({
    export: {
      tcp: { type: "jumpstarter_driver_network.driver.TcpNetwork", config: { host: "127.0.0.1", port: server.port } },
      echo: { type: "EchoNetwork" },
      udp: { type: "UdpNetwork", config: { host: "127.0.0.1", port: "5353", enable_address: false } },
    },
  }, "net.yaml");
  const s = await serve(config);
  cleanups.push(() => s.close());
  const tcp = s.client.child("tcp", NetworkClient);
  expect(tcp.labels["jumpstarter.dev/client"]).toBe("jumpstarter_driver_network.client.NetworkClient");
  expect(str(await roundTrip(await tcp.connect(), text("via config")))).toBe("via config");
  expect(str(await roundTrip(await s.client.child("echo", NetworkClient).connect(), text("e")))).toBe("e");

  const bad = parseExporterConfig({ export: { tcp: { type: "TcpNetwork", config: { host: "h", port: 70000 } } } }, "bad.yaml");
  await expect(serve(bad)).rejects.toThrow(/bad\.yaml.*port.*65535/);
});
