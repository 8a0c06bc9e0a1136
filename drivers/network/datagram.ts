/**
 * UDP for UdpNetwork: a connected socket, exposed as a ByteStream. Framing is kept
 * end to end: every chunk written is sent as one datagram, and every datagram
 * received is read as one chunk (the session carries each chunk as its own DATA frame).
 */
import dgram, { type Socket } from "node:dgram";
import { lookup } from "node:dns/promises";
import net from "node:net";
import { UnavailableError, type ByteStream } from "@jumpstarter/driver";
import { describeSocketError } from "./connect.ts";

/**
 * Datagrams waiting for a slow reader. UDP has no backpressure, so past this many
 * the newest are dropped, as a full kernel receive buffer would.
 */
const QUEUED_DATAGRAMS = 256;

/** A UDP socket connected to host:port (so it only hears from there), of the host's address family. */
export async function connectDatagramSocket(host: string, port: number, what: string): Promise<Socket> {
  const failed = (e: unknown) => new UnavailableError(`cannot connect to ${what}: ${describeSocketError(e)}`, { cause: e });
  const target = net.isIP(host) ? { address: host, family: net.isIP(host) } : await lookup(host).catch((e) => {
    throw failed(e);
  });
  const socket = dgram.createSocket(target.family === 6 ? "udp6" : "udp4");
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.connect(port, target.address, () => {
        socket.off("error", reject);
        resolve();
      });
    });
  } catch (e) {
    closeDatagramSocket(socket);
    throw failed(e);
  }
  return socket;
}

export function datagramByteStream(socket: Socket, what: string, onDrop: () => void): ByteStream {
  let closed = false;
  const shut = () => {
    if (closed) return;
    closed = true;
    closeDatagramSocket(socket);
  };
  const readable = new ReadableStream<Uint8Array>({
    start(controller) {
      socket.on("message", (msg: Buffer) => {
        if ((controller.desiredSize ?? 0) > 0) controller.enqueue(new Uint8Array(msg));
        else onDrop();
      });
      // A connected UDP socket learns of an ICMP "port unreachable" as ECONNREFUSED.
      socket.on("error", (e) => {
        if (closed) return;
        controller.error(new UnavailableError(`${what}: ${describeSocketError(e)}`, { cause: e }));
        shut();
      });
    },
    cancel: shut,
  }, { highWaterMark: QUEUED_DATAGRAMS });
  const writable = new WritableStream<Uint8Array>({
    write(chunk) {
      return new Promise<void>((resolve, reject) => {
        if (closed) return reject(Object.assign(new Error(`${what}: socket closed`), { code: "EPIPE" }));
        socket.send(chunk, (err) => (err ? reject(err) : resolve()));
      });
    },
    // UDP has no half-close: the socket keeps receiving replies until the stream ends.
    close() {},
    abort: shut,
  });
  return { readable, writable };
}

/** Closes a UDP socket that may already be closed (dgram throws on a second close). */
export function closeDatagramSocket(socket: Socket): void {
  try {
    socket.close();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ERR_SOCKET_DGRAM_NOT_RUNNING") throw e;
  }
}
