/**
 * A read-only TFTP server (RFC 1350) with the blksize, tsize and timeout options
 * (RFC 2347, 2348, 2349). Requests arrive on the listening port; each transfer
 * then runs on its own socket (its transfer ID), one block in flight, resent
 * when the ACK does not come.
 */
import dgram from "node:dgram";
import net from "node:net";
import type { ServedDirectory } from "../http/served-dir.ts";
import {
  ackedBlock, dataPacket, ErrorCode, errorPacket, MalformedPacket, oackPacket, Opcode, opcodeOf, parseError,
  parseReadRequest, toNetascii, type ReadRequest,
} from "./protocol.ts";

export interface TftpLog {
  info(message: string): void;
  warn(message: string): void;
}

interface Peer {
  address: string;
  port: number;
}

const DEFAULT_BLOCK = 512;
const MAX_BLOCK = 65464;
const MIN_BLOCK = 8;
/** Retransmissions of one packet before the transfer is given up. */
const RETRIES = 5;

export class TftpServer {
  private socket?: dgram.Socket;
  private readonly transfers = new Set<Transfer>();

  constructor(
    private readonly dir: ServedDirectory,
    private readonly log: TftpLog,
    /** Seconds to wait for an ACK when the client does not ask for a timeout. */
    private readonly timeout = 1,
  ) {}

  get running(): boolean {
    return this.socket !== undefined;
  }

  /** Listens on host:port (port 0: any free port) and resolves to the port. */
  async listen(host: string, port: number): Promise<number> {
    const socket = dgram.createSocket(net.isIPv6(host) ? "udp6" : "udp4");
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(port, host, () => {
        socket.off("error", reject);
        resolve();
      });
    });
    socket.on("error", (e) => this.log.warn(`TFTP socket error: ${e.message}`));
    socket.on("message", (msg, rinfo) => {
      this.request(new Uint8Array(msg), { address: rinfo.address, port: rinfo.port }, host)
        .catch((e: Error) => this.log.warn(`TFTP request from ${rinfo.address} failed: ${e.message}`));
    });
    this.socket = socket;
    return socket.address().port;
  }

  /** Stops listening and ends the transfers in progress. */
  async close(): Promise<void> {
    const socket = this.socket;
    this.socket = undefined;
    for (const t of this.transfers) t.abort("the server is stopping");
    if (socket) await new Promise<void>((r) => socket.close(() => r()));
  }

  private send(to: Peer, packet: Uint8Array): void {
    this.socket?.send(packet, to.port, to.address);
  }

  private async request(packet: Uint8Array, from: Peer, host: string): Promise<void> {
    const op = opcodeOf(packet);
    if (op === Opcode.WRQ) {
      this.log.warn(`refused a write request from ${from.address}: this TFTP server is read-only`);
      return this.send(from, errorPacket(ErrorCode.ACCESS_VIOLATION, "this server is read-only"));
    }
    if (op !== Opcode.RRQ) {
      // A stray ERROR needs no answer; anything else on the request port is a protocol error.
      if (op !== Opcode.ERROR) this.send(from, errorPacket(ErrorCode.ILLEGAL_OPERATION, "expected a read request"));
      return;
    }
    let req: ReadRequest;
    try {
      req = parseReadRequest(packet);
    } catch (e) {
      if (!(e instanceof MalformedPacket)) throw e;
      return this.send(from, errorPacket(ErrorCode.ILLEGAL_OPERATION, e.message));
    }
    const file = await this.dir.fileFor(req.filename);
    if (file === "outside") {
      this.log.warn(`refused '${req.filename}' to ${from.address}: outside the served directory`);
      return this.send(from, errorPacket(ErrorCode.ACCESS_VIOLATION, "access violation: outside the served directory"));
    }
    if (file === "missing" || file === "not-a-file") {
      this.log.info(`'${req.filename}' requested by ${from.address}: ${file === "missing" ? "not found" : "not a file"}`);
      return this.send(from, errorPacket(ErrorCode.FILE_NOT_FOUND, file === "missing" ? "file not found" : "not a file"));
    }
    const transfer = new Transfer(req, file.path, file.size, from, this.timeout, this.log);
    this.transfers.add(transfer);
    try {
      await transfer.run(host);
    } finally {
      this.transfers.delete(transfer);
    }
  }
}

/** Answers the options the server understands; the others are left out of the OACK, as RFC 2347 says. */
function negotiate(req: ReadRequest, size: number, defaultTimeout: number) {
  const accepted = new Map<string, string>();
  let blksize = DEFAULT_BLOCK;
  let timeout = defaultTimeout;
  const asked = req.options.get("blksize");
  if (asked !== undefined && /^\d+$/.test(asked) && Number(asked) >= MIN_BLOCK) {
    blksize = Math.min(Number(asked), MAX_BLOCK);
    accepted.set("blksize", String(blksize));
  }
  const t = req.options.get("timeout");
  if (t !== undefined && /^\d+$/.test(t) && Number(t) >= 1 && Number(t) <= 255) {
    timeout = Number(t);
    accepted.set("timeout", t);
  }
  // The size of a netascii transfer is only known once converted; decline tsize there.
  if (req.options.has("tsize") && req.mode === "octet") accepted.set("tsize", String(size));
  return { accepted, blksize, timeout };
}

/** One read transfer: sends the file in blocks on its own socket. */
class Transfer {
  private socket?: dgram.Socket;
  private waiter?: (packet: Uint8Array | undefined) => void;
  private aborted?: string;

  constructor(
    private readonly req: ReadRequest,
    private readonly path: string,
    private readonly size: number,
    private readonly peer: Peer,
    private readonly defaultTimeout: number,
    private readonly log: TftpLog,
  ) {}

  abort(reason: string): void {
    this.aborted = reason;
    this.sendRaw(errorPacket(ErrorCode.NOT_DEFINED, reason));
    this.waiter?.(undefined);
  }

  async run(host: string): Promise<void> {
    const { accepted, blksize, timeout } = negotiate(this.req, this.size, this.defaultTimeout);
    const socket = dgram.createSocket(net.isIPv6(this.peer.address) ? "udp6" : "udp4");
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(0, host, () => resolve());
    });
    socket.on("error", (e) => this.log.warn(`TFTP transfer of '${this.req.filename}': ${e.message}`));
    socket.on("message", (msg, rinfo) => {
      if (rinfo.address !== this.peer.address || rinfo.port !== this.peer.port) {
        // RFC 1350: a packet from another transfer ID gets an error, and this transfer goes on.
        socket.send(errorPacket(ErrorCode.UNKNOWN_TID, "unknown transfer ID"), rinfo.port, rinfo.address);
        return;
      }
      this.waiter?.(new Uint8Array(msg));
    });
    this.socket = socket;
    const started = Date.now();
    try {
      if (accepted.size > 0 && !(await this.exchange(oackPacket(accepted), 0, timeout))) return;
      let block = 0;
      let sent = 0;
      for await (const data of blocks(this.path, this.req.mode, blksize)) {
        block = (block + 1) & 0xffff;
        if (!(await this.exchange(dataPacket(block, data), block, timeout))) return;
        sent += data.byteLength;
      }
      const ms = Date.now() - started;
      this.log.info(`sent '${this.req.filename}' (${sent} bytes, ${this.req.mode}, ${blksize}-byte blocks) to ${this.peer.address} in ${ms} ms`);
    } catch (e) {
      this.log.warn(`TFTP transfer of '${this.req.filename}' failed: ${(e as Error).message}`);
      this.sendRaw(errorPacket(ErrorCode.NOT_DEFINED, "read error on the server"));
    } finally {
      this.waiter = undefined;
      socket.close();
    }
  }

  /**
   * Sends a packet until the ACK for `block` arrives. False when the client gave
   * up (ERROR), went silent or the transfer was aborted.
   */
  private async exchange(packet: Uint8Array, block: number, timeout: number): Promise<boolean> {
    for (let attempt = 0; attempt <= RETRIES; attempt++) {
      if (this.aborted) return false;
      this.sendRaw(packet);
      const deadline = Date.now() + timeout * 1000;
      for (;;) {
        const reply = await this.next(deadline - Date.now());
        if (this.aborted) return false;
        if (!reply) break;
        const acked = ackedBlock(reply);
        if (acked === block) return true;
        // An old ACK is a duplicate: answering it would double every later packet
        // (the "Sorcerer's Apprentice" bug), so just keep waiting.
        if (acked !== undefined) continue;
        const err = parseError(reply);
        if (err) {
          this.log.info(`client ${this.peer.address} ended the transfer of '${this.req.filename}': ${err.message || `error ${err.code}`}`);
          return false;
        }
        this.sendRaw(errorPacket(ErrorCode.ILLEGAL_OPERATION, "expected an ACK"));
        return false;
      }
    }
    this.log.warn(`gave up sending '${this.req.filename}' to ${this.peer.address}: no ACK for block ${block} after ${RETRIES + 1} tries`);
    return false;
  }

  private next(ms: number): Promise<Uint8Array | undefined> {
    if (ms <= 0) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const timer = setTimeout(() => finish(undefined), ms);
      const finish = (p: Uint8Array | undefined) => {
        clearTimeout(timer);
        this.waiter = undefined;
        resolve(p);
      };
      this.waiter = finish;
    });
  }

  private sendRaw(packet: Uint8Array): void {
    this.socket?.send(packet, this.peer.port, this.peer.address);
  }
}

/**
 * The file cut into blocks of exactly `size` bytes; the last one is shorter, and
 * empty when the length is a multiple of the block size (that is how the client
 * sees the end).
 */
async function* blocks(path: string, mode: "octet" | "netascii", size: number): AsyncGenerator<Uint8Array> {
  let pending = new Uint8Array(0);
  for await (const raw of Bun.file(path).stream()) {
    const chunk = mode === "netascii" ? toNetascii(raw) : raw;
    const joined = new Uint8Array(pending.byteLength + chunk.byteLength);
    joined.set(pending);
    joined.set(chunk, pending.byteLength);
    let at = 0;
    for (; joined.byteLength - at >= size; at += size) yield joined.slice(at, at + size);
    pending = joined.slice(at);
  }
  yield pending;
}
