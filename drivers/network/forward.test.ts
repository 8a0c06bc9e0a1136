import { afterEach, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { UnavailableError } from "@jumpstarter/driver";
import { serve, type Served } from "../../src/testing/serve.ts";
import { NetworkClient } from "./client.ts";
import { EchoNetwork, TcpNetwork } from "./driver.ts";
import { forwardTcp, forwardUnix } from "./forward.ts";
import { connectLocal, echoServer, freePort, readSocket } from "./test-servers.ts";

const cleanups: (() => unknown)[] = [];
let served: Served<NetworkClient> | undefined;
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await served?.close();
  served = undefined;
});

async function tcpBehindDriver(replyAfterEnd = false) {
  const server = await echoServer({}, replyAfterEnd);
  cleanups.push(() => server.close());
  served = await serve<NetworkClient>(TcpNetwork.create({ host: "127.0.0.1", port: server.port }));
  return server;
}

test("forwardTcp gives every local connection its own stream, data never mixing", async () => {
  const server = await tcpBehindDriver();
  const forward = await forwardTcp(served!.client);
  cleanups.push(() => forward.close());
  expect(forward.address).toBe(`127.0.0.1:${forward.port}`);

  const sockets = await Promise.all([0, 1, 2, 3, 4].map(() => connectLocal({ port: forward.port! })));
  const payloads = sockets.map((_, i) => Buffer.alloc(200_000 + i * 1000, `connection ${i};`));
  const replies = sockets.map((s) => readSocket(s));
  // Interleave the writes so that any mixing between connections would show.
  for (let off = 0; off < 200_000; off += 10_000) {
    sockets.forEach((s, i) => s.write(payloads[i]!.subarray(off, off + 10_000)));
  }
  sockets.forEach((s, i) => s.end(payloads[i]!.subarray(200_000)));
  const got = await Promise.all(replies);
  got.forEach((text, i) => expect(text === payloads[i]!.toString()).toBe(true));
  expect(server.accepted).toBe(5);
});

test("a half-close through forwardTcp reaches the remote end, and its reply comes back", async () => {
  await tcpBehindDriver(true);
  const forward = await forwardTcp(served!.client, { host: "127.0.0.1", port: 0 });
  cleanups.push(() => forward.close());
  const socket = await connectLocal({ port: forward.port! });
  const reply = readSocket(socket);
  socket.end("sixteen bytes!!!");
  expect(await reply).toBe("got 16 bytes");
});

test("a failing stream closes only its own connection and is reported", async () => {
  const port = await freePort();
  served = await serve<NetworkClient>(TcpNetwork.create({ host: "127.0.0.1", port }));
  const errors: Error[] = [];
  const forward = await forwardTcp(served.client, { onError: (e) => errors.push(e) });
  cleanups.push(() => forward.close());
  const socket = await connectLocal({ port: forward.port! });
  const ended = readSocket(socket);
  socket.write("hello?");
  expect(await ended).toBe("");
  expect(errors).toHaveLength(1);
  expect(errors[0]).toBeInstanceOf(UnavailableError);
  expect(errors[0]!.message).toContain(`127.0.0.1:${port}`);
  // The listener is still there for the next connection.
  const again = await connectLocal({ port: forward.port! });
  again.destroy();
});

test("forwardUnix listens on a fresh private socket by default and removes it on close", async () => {
  served = await serve<NetworkClient>(new EchoNetwork({}));
  const forward = await forwardUnix(served.client);
  expect(forward.address.endsWith("/socket")).toBe(true);
  const socket = await connectLocal({ path: forward.address });
  const reply = readSocket(socket);
  socket.end("through a unix socket");
  expect(await reply).toBe("through a unix socket");
  await forward.close();
  expect(existsSync(dirname(forward.address))).toBe(false);
});

test("forwardUnix at a given path replaces a stale socket file but not a live one", async () => {
  served = await serve<NetworkClient>(new EchoNetwork({}));
  const dir = mkdtempSync(join(tmpdir(), "jmp-fwd-test-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "console.sock");
  // A listener that dies without cleaning up leaves its socket file behind.
  const dead = Bun.spawn(["python3", "-c", `import socket; s = socket.socket(socket.AF_UNIX); s.bind(${JSON.stringify(path)})`]);
  await dead.exited;
  expect(existsSync(path)).toBe(true);

  const forward = await forwardUnix(served.client, { path });
  cleanups.push(() => forward.close());
  expect(forward.address).toBe(path);
  const socket = await connectLocal({ path });
  const reply = readSocket(socket);
  socket.end("ping");
  expect(await reply).toBe("ping");

  await expect(forwardUnix(served.client, { path })).rejects.toThrow(`cannot listen on ${path}: address already in use`);
});

test("close() stops listening and ends forwarded connections", async () => {
  await tcpBehindDriver();
  const forward = await forwardTcp(served!.client);
  const open = await connectLocal({ port: forward.port! });
  const ended = readSocket(open);
  open.write("in flight");
  await forward.close();
  await ended.catch(() => "reset");
  const refused = await connectLocal({ port: forward.port! }).then(
    (s) => (s.destroy(), undefined),
    (e: NodeJS.ErrnoException) => e.code,
  );
  expect(refused).toBe("ECONNREFUSED");

  const unix = await forwardUnix(served!.client);
  await unix[Symbol.asyncDispose]();
  await expect(connectLocal({ path: unix.address })).rejects.toThrow();
});

test("forwardTcp says clearly when the local port is taken", async () => {
  served = await serve<NetworkClient>(new EchoNetwork({}));
  const taken = net.createServer();
  await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
  cleanups.push(() => new Promise((resolve) => taken.close(resolve)));
  const port = (taken.address() as net.AddressInfo).port;
  await expect(forwardTcp(served.client, { port })).rejects.toThrow(`cannot listen on 127.0.0.1:${port}: address already in use`);
});
