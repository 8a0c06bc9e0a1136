import { afterEach, expect, test } from "bun:test";
import * as http2 from "node:http2";
import * as net from "node:net";
import { h2Frame } from "../testing/h2-frames.ts";
import { CANCEL, H2ClientConnection, H2ConnectionError, type H2Stream } from "./h2-connection.ts";

let server: http2.Http2Server | undefined;
const sockets: net.Socket[] = [];

afterEach(() => {
  for (const s of sockets.splice(0)) s.destroy();
  server?.close();
  server = undefined;
});

/** A node:http2 server on loopback that hands each stream to `onStream`. */
async function serve(onStream: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void, settings?: http2.Settings): Promise<number> {
  server = http2.createServer({ settings, maxSessionMemory: 64 });
  server.on("stream", onStream);
  await new Promise<void>((r) => server!.listen(0, "127.0.0.1", () => r()));
  return (server.address() as net.AddressInfo).port;
}

/** Our connection over a TCP socket to `port`. */
function connect(port: number, windowBytes?: number): { conn: H2ClientConnection; socket: net.Socket } {
  const socket = net.connect(port, "127.0.0.1");
  sockets.push(socket);
  const conn = new H2ClientConnection({ write: (b) => void socket.write(b), close: () => socket.destroy() }, { windowBytes });
  socket.on("data", (c: Buffer) => conn.receive(c));
  socket.on("error", (e) => conn.transportClosed(e));
  socket.on("close", () => conn.transportClosed());
  return { conn, socket };
}

const post = (path: string, extra: [string, string][] = []): [string, string][] => [
  [":method", "POST"], [":scheme", "http"], [":authority", "localhost"], [":path", path], ...extra,
];

/** Resolves when `ready` holds for the stream, checked at each change. */
function until(stream: H2Stream, ready: () => boolean, ms = 5000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("timed out waiting on the stream")), ms);
    const check = () => {
      if (!ready()) return;
      clearTimeout(timer);
      stream.onChange = undefined;
      resolve();
    };
    stream.onChange = check;
    check();
  });
}

/** Everything the stream delivers until it is done. */
async function readAll(stream: H2Stream): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  await until(stream, () => {
    parts.push(...stream.take());
    return stream.done;
  }, 20_000);
  return Buffer.concat(parts);
}

test("a body larger than every window goes out as the server credits it, and its echo comes back whole", async () => {
  // The server's default windows are 64 KiB; ours too here, so both sides must credit as they read.
  const port = await serve((stream) => {
    stream.respond({ ":status": 200, "content-type": "application/octet-stream" });
    stream.pipe(stream);
  });
  const { conn } = connect(port, 65_535);
  const body = new Uint8Array(3 * 1024 * 1024).map((_, i) => (i * 7) & 0xff);
  const stream = conn.request(post("/echo"), body);
  const echoed = await readAll(stream);
  expect(stream.rstCode).toBeUndefined();
  expect(stream.headers?.[":status"]).toBe("200");
  expect(echoed.byteLength).toBe(body.byteLength);
  expect(echoed.equals(body)).toBe(true);
});

test("what is not taken is not credited: the server can send one window and no more", async () => {
  let written = 0;
  const port = await serve((stream) => {
    stream.respond({ ":status": 200 });
    const chunk = Buffer.alloc(16 * 1024, 1);
    const pump = () => {
      while (written < 1024 * 1024 && stream.write(chunk)) written += chunk.byteLength;
    };
    stream.on("drain", pump);
    pump();
  });
  const { conn } = connect(port, 65_535);
  const stream = conn.request(post("/flood"), new Uint8Array(0));
  await Bun.sleep(300);
  const first = stream.take().reduce((n, c) => n + c.byteLength, 0);
  expect(first).toBe(65_535);
  // Once taken, the credit lets the rest come.
  await until(stream, () => stream.take().length > 0);
  stream.cancel();
});

test("headers, messages and trailers arrive in order; a request header larger than a frame goes in CONTINUATION frames", async () => {
  let seen: string | undefined;
  const port = await serve((stream, headers) => {
    seen = String(headers["x-big"]);
    stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
    stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0", "grpc-message": "fine" }));
    stream.end(Buffer.from("reply"));
  }, { maxHeaderListSize: 256 * 1024 });
  const { conn } = connect(port);
  const big = "b".repeat(40 * 1024);
  const stream = conn.request(post("/x", [["x-big", big]]), Uint8Array.of(1, 2, 3));
  const body = await readAll(stream);
  expect(seen).toBe(big);
  expect(stream.headers?.["content-type"]).toBe("application/grpc");
  expect(body.toString()).toBe("reply");
  expect(stream.trailers).toEqual({ "grpc-status": "0", "grpc-message": "fine" });
  expect(stream.ended).toBe(true);
});

test("the server's PING is answered, and a cancelled stream reaches the server as CANCEL", async () => {
  let closedWith: number | undefined;
  let session: http2.Http2Session | undefined;
  const port = await serve((stream) => {
    session = stream.session;
    stream.respond({ ":status": 200 });
    stream.on("close", () => (closedWith = stream.rstCode));
  });
  const { conn } = connect(port);
  const stream = conn.request(post("/wait"), new Uint8Array(0));
  await until(stream, () => stream.headers !== undefined);
  const rtt = await new Promise<number>((resolve, reject) => session!.ping((e, ms) => (e ? reject(e) : resolve(ms))));
  expect(rtt).toBeGreaterThanOrEqual(0);
  stream.cancel();
  expect(stream.rstCode).toBe(CANCEL);
  for (let i = 0; i < 100 && closedWith === undefined; i++) await Bun.sleep(10);
  expect(closedWith).toBe(CANCEL);
});

test("a stream the server resets ends with its code; after its GOAWAY no new stream is opened", async () => {
  let session: http2.Http2Session | undefined;
  const port = await serve((stream) => {
    session = stream.session;
    stream.on("error", () => {});
    // Reset while our body is still coming (unread, so held back by the window): an
    // answer that had ended both sides would need no RST_STREAM, and Bun sends none.
    stream.pause();
    stream.respond({ ":status": 200 });
    stream.write("partial", () => stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR));
  });
  const { conn } = connect(port);
  const refused = conn.request(post("/no"), new Uint8Array(1024 * 1024));
  await until(refused, () => refused.done);
  expect(refused.rstCode).toBe(http2.constants.NGHTTP2_INTERNAL_ERROR);
  expect(refused.outbox).toEqual([]);
  expect(refused.error).toBeUndefined();
  session!.goaway(http2.constants.NGHTTP2_NO_ERROR);
  for (let i = 0; i < 100 && !conn.closed; i++) await Bun.sleep(10);
  expect(conn.closed).toBe(true);
  expect(() => conn.request(post("/late"), new Uint8Array(0))).toThrow("GOAWAY");
});

test("a socket that closes under a stream fails it, and every request after it", async () => {
  const port = await serve((stream) => stream.respond({ ":status": 200 }));
  const { conn, socket } = connect(port);
  const stream = conn.request(post("/hang"), new Uint8Array(0));
  await until(stream, () => stream.headers !== undefined);
  socket.destroy();
  await until(stream, () => stream.done);
  expect(stream.error).toBeInstanceOf(H2ConnectionError);
  expect(() => conn.request(post("/after"), new Uint8Array(0))).toThrow(H2ConnectionError);
});

/** A connection fed by hand, and the frames it wrote. */
function fed(): { conn: H2ClientConnection; frames: () => { type: number; flags: number; id: number; payload: Uint8Array }[]; closed: () => boolean } {
  const written: Uint8Array[] = [];
  let closed = false;
  const conn = new H2ClientConnection({ write: (b) => void written.push(b), close: () => (closed = true) });
  const frames = () => {
    const all = Buffer.concat(written);
    const out = [];
    for (let at = 24; at + 9 <= all.byteLength;) {
      const length = all.readUIntBE(at, 3);
      out.push({ type: all[at + 3]!, flags: all[at + 4]!, id: all.readUInt32BE(at + 5), payload: all.subarray(at + 9, at + 9 + length) });
      at += 9 + length;
    }
    return out;
  };
  return { conn, frames, closed: () => closed };
}

const frame = h2Frame;

test("PING is acknowledged with its payload, SETTINGS are acknowledged, frames split anywhere are read whole", async () => {
  const { conn, frames } = fed();
  const bytes = Buffer.concat([frame(4, 0, 0, Buffer.from([0, 5, 0, 0, 0x40, 0])), frame(6, 0, 0, Buffer.from("12345678"))]);
  // One byte at a time: a frame's head and payload may come in any pieces.
  for (const b of bytes) conn.receive(Uint8Array.of(b));
  await Bun.sleep(0);
  const sent = frames();
  expect(sent.some((f) => f.type === 4 && f.flags === 1)).toBe(true);
  const pong = sent.find((f) => f.type === 6);
  expect(pong?.flags).toBe(1);
  expect(Buffer.from(pong!.payload).toString()).toBe("12345678");
  expect(conn.failure).toBeUndefined();
});

test("a peer that breaks the protocol fails the connection with a clear error, sends GOAWAY and closes", async () => {
  for (const [bad, words] of [
    [frame(0, 0, 1, new Uint8Array(20_000)), "a frame of 20000 bytes"],
    [frame(5, 4, 1, new Uint8Array(8)), "pushed a stream"],
    [frame(9, 4, 1, new Uint8Array(1)), "CONTINUATION without its HEADERS"],
    [frame(1, 4, 1, Uint8Array.of(0x80)), "cannot decode"],
    [frame(6, 0, 0, new Uint8Array(3)), "PING of the wrong size"],
  ] as const) {
    const { conn, frames, closed } = fed();
    const stream = conn.request(post("/x"), new Uint8Array(0));
    conn.receive(bad);
    expect(conn.failure?.message).toContain(words);
    expect(stream.error).toBe(conn.failure!);
    expect(frames().some((f) => f.type === 7 && Buffer.from(f.payload).readUInt32BE(4) === 1)).toBe(true);
    expect(closed()).toBe(true);
  }
});

test("write() resolves once the windows let its chunk out, end() ends the stream, and a reset rejects the writer still waiting", async () => {
  const { conn, frames } = fed();
  const stream = conn.request(post("/up"), new Uint8Array(0), { endStream: false });
  const chunk = new Uint8Array(32 * 1024);
  await stream.write(chunk);
  // The peer's windows start at 65 535 bytes: one byte of the second chunk must wait.
  let second = false;
  const writing = stream.write(chunk).then(() => (second = true));
  await Bun.sleep(10);
  expect(second).toBe(false);
  const update = (id: number, n: number) => frame(8, 0, id, Buffer.from([n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]));
  conn.receive(Buffer.concat([update(0, 1000), update(1, 1000)]));
  await writing;
  const data = frames().filter((f) => f.type === 0 && f.id === 1);
  expect(data.reduce((n, f) => n + f.payload.byteLength, 0)).toBe(2 * chunk.byteLength);

  // Held back again, then reset by the peer: the writer hears of it.
  const held = stream.write(new Uint8Array(4096));
  conn.receive(frame(3, 0, 1, Buffer.from([0, 0, 0, 2])));
  await expect(held).rejects.toThrow("the peer reset the stream (HTTP/2 code 2)");
  expect(stream.rstCode).toBe(2);

  const next = conn.request(post("/up"), new Uint8Array(0), { endStream: false });
  conn.receive(update(0, 65_535));
  await next.write(Uint8Array.of(1, 2, 3));
  next.end();
  await Bun.sleep(0);
  const last = frames().filter((f) => f.id === 3).at(-1)!;
  expect([last.type, last.flags & 1]).toEqual([0, 1]);
  await expect(next.write(Uint8Array.of(4))).rejects.toThrow("closed");
});
