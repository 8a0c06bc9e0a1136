/** Real endpoints for the network tests: TCP, UDP and Unix echo servers, and helpers. */
import dgram from "node:dgram";
import net from "node:net";
import type { ByteStream } from "@jumpstarter/driver";

export interface EchoServer {
  port: number;
  path?: string;
  /** Connections accepted so far. */
  accepted: number;
  /** Sockets the server still has open. */
  open: Set<net.Socket>;
  /** Resolves with the first connection the server accepts. */
  firstConnection: Promise<net.Socket>;
  close(): Promise<void>;
}

/**
 * A stream echo server. With `replyAfterEnd`, it instead waits for the client's FIN
 * and only then answers `got <n> bytes`, to prove half-close travels end to end.
 */
export async function echoServer(where: { path: string } | { host?: string } = {}, replyAfterEnd = false): Promise<EchoServer> {
  const open = new Set<net.Socket>();
  const state = { accepted: 0 };
  const first = Promise.withResolvers<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    state.accepted++;
    first.resolve(socket);
    open.add(socket);
    socket.on("close", () => open.delete(socket));
    socket.on("error", () => {});
    if (!replyAfterEnd) {
      socket.pipe(socket);
      return;
    }
    let received = 0;
    socket.on("data", (d: Buffer) => (received += d.byteLength));
    socket.on("end", () => socket.end(`got ${received} bytes`));
  });
  await new Promise<void>((resolve) => {
    if ("path" in where) server.listen(where.path, resolve);
    else server.listen(0, where.host ?? "127.0.0.1", resolve);
  });
  const address = server.address();
  return {
    port: typeof address === "object" && address ? address.port : 0,
    path: "path" in where ? where.path : undefined,
    get accepted() {
      return state.accepted;
    },
    open,
    firstConnection: first.promise,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A UDP socket that sends every datagram back to its sender, upper-cased. */
export async function udpEchoServer(): Promise<{ port: number; close(): void }> {
  const socket = dgram.createSocket("udp4");
  socket.on("message", (msg, peer) => socket.send(Buffer.from(msg.toString().toUpperCase()), peer.port, peer.address));
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  return { port: socket.address().port, close: () => socket.close() };
}

/** A port nothing listens on (just released by us). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Reads exactly `n` bytes (or what there is before the end). */
export async function readBytes(reader: { read(): Promise<{ done: boolean; value?: Uint8Array }> }, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let got = 0;
  while (got < n) {
    const { done, value } = await reader.read();
    if (done || !value) break;
    out.set(value.subarray(0, n - got), got);
    got += value.byteLength;
  }
  return out.subarray(0, Math.min(got, n));
}

/** Writes `data` then half-closes, while reading everything back; resolves to what came back. */
export async function roundTrip(stream: ByteStream, data: Uint8Array): Promise<Uint8Array> {
  const writing = (async () => {
    const writer = stream.writable.getWriter();
    for (let i = 0; i < data.byteLength; i += 64 * 1024) await writer.write(data.subarray(i, i + 64 * 1024));
    await writer.close();
  })();
  const [back] = await Promise.all([new Response(stream.readable).arrayBuffer(), writing]);
  return new Uint8Array(back);
}

/** Reads a local socket until the peer ends it. */
export function readSocket(socket: net.Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = "";
    socket.on("data", (d) => (text += d));
    socket.on("end", () => resolve(text));
    socket.on("error", reject);
  });
}

export function connectLocal(options: { port: number; host?: string } | { path: string }): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ ...options, allowHalfOpen: true } as net.NetConnectOpts);
    socket.once("connect", () => resolve(socket));
    socket.once("error", reject);
  });
}
