/**
 * Port forwarding: a local TCP or Unix listener where every accepted connection
 * gets its own byte stream from a driver (`connect` by default) and the two are
 * spliced both ways. Works with any client whose driver exports such a stream.
 */
import { lstat, mkdtemp, rm, unlink } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ByteStream, pipeBoth } from "@jumpstarter/driver";
import { describeSocketError, hostPort, socketStream } from "./connect.ts";

/** What forwarding needs of a client: `DriverClient.stream`. */
export interface StreamOpener {
  stream(method?: string, signal?: AbortSignal): Promise<ByteStream>;
}

export interface ForwardOptions {
  /** The driver's byte-stream method to open per connection. */
  method?: string;
  /**
   * Told when one forwarded connection fails (the stream could not be opened, or
   * either side broke). Only that connection is closed; the listener keeps going.
   */
  onError?: (error: Error) => void;
}

export interface Forward extends AsyncDisposable {
  /** `host:port` for TCP (IPv6 in brackets), the socket path for Unix. */
  readonly address: string;
  /** The port listened on (TCP only). */
  readonly port?: number;
  /** Stops listening and closes every forwarded connection. */
  close(): Promise<void>;
}

/** Listens on TCP `host:port` (default 127.0.0.1, a free port). */
export async function forwardTcp(
  client: StreamOpener,
  options: ForwardOptions & { host?: string; port?: number } = {},
): Promise<Forward> {
  const host = options.host ?? "127.0.0.1";
  const forwarder = new Forwarder(client, options);
  await listen(forwarder.server, { host, port: options.port ?? 0 }, hostPort(host, options.port ?? 0));
  const bound = forwarder.server.address() as net.AddressInfo;
  const close = () => forwarder.close();
  return { address: hostPort(bound.address, bound.port), port: bound.port, close, [Symbol.asyncDispose]: close };
}

/**
 * Listens on a Unix socket at `path`, by default `socket` in a fresh private
 * directory (under $XDG_RUNTIME_DIR when set) that is removed on close. A stale
 * socket file left at `path` by a dead process is replaced.
 */
export async function forwardUnix(client: StreamOpener, options: ForwardOptions & { path?: string } = {}): Promise<Forward> {
  const dir = options.path ? undefined : await mkdtemp(join(process.env.XDG_RUNTIME_DIR || tmpdir(), "jmp-forward-"));
  const path = options.path ?? join(dir!, "socket");
  const forwarder = new Forwarder(client, options);
  try {
    await listenUnix(forwarder.server, path);
  } catch (e) {
    if (dir) await rm(dir, { recursive: true, force: true });
    throw e;
  }
  const close = async () => {
    await forwarder.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  };
  return { address: path, close, [Symbol.asyncDispose]: close };
}

class Forwarder {
  readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private readonly running = new Set<Promise<void>>();
  private readonly stop = new AbortController();
  private closing?: Promise<void>;

  constructor(
    private readonly client: StreamOpener,
    private readonly options: ForwardOptions,
  ) {
    // Half-open allowed: a local FIN travels to the remote end and replies still come back.
    this.server = net.createServer({ allowHalfOpen: true }, (socket) => {
      this.sockets.add(socket);
      const done = this.splice(socket).finally(() => {
        this.sockets.delete(socket);
        this.running.delete(done);
      });
      this.running.add(done);
    });
  }

  private async splice(socket: net.Socket): Promise<void> {
    // Bytes the local side sends before the remote stream is open wait in the socket.
    // Its own errors (a reset by the local program) are that program's business, not
    // news to report; listening also keeps an early reset from going unhandled.
    let localError: unknown;
    socket.on("error", (e) => (localError = e));
    let remote: ByteStream;
    try {
      remote = await this.client.stream(this.options.method ?? "connect", this.stop.signal);
    } catch (e) {
      socket.destroy();
      if (!this.stop.signal.aborted) this.report(e);
      return;
    }
    if (socket.destroyed) {
      await Promise.allSettled([remote.readable.cancel(), remote.writable.abort()]);
      return;
    }
    try {
      await pipeBoth(socketStream(socket), remote);
    } catch (e) {
      if (!this.stop.signal.aborted && e !== localError) this.report(e);
    } finally {
      socket.destroy();
    }
  }

  private report(e: unknown): void {
    this.options.onError?.(e instanceof Error ? e : new Error(String(e)));
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      const stopped = new Promise<void>((resolve) => this.server.close(() => resolve()));
      this.stop.abort();
      for (const socket of this.sockets) socket.destroy();
      await stopped;
      await Promise.allSettled([...this.running]);
    })();
    return this.closing;
  }
}

function listen(server: net.Server, where: net.ListenOptions, label: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const fail = (e: NodeJS.ErrnoException) =>
      reject(Object.assign(new Error(`cannot listen on ${label}: ${describeSocketError(e)}`, { cause: e }), { code: e.code }));
    server.once("error", fail);
    server.listen(where, () => {
      server.off("error", fail);
      resolve();
    });
  });
}

async function listenUnix(server: net.Server, path: string): Promise<void> {
  try {
    await listen(server, { path }, path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EADDRINUSE" || !(await isStaleSocket(path))) throw e;
    await unlink(path);
    await listen(server, { path }, path);
  }
}

/** A socket file nobody listens on any more (its server died without removing it). */
async function isStaleSocket(path: string): Promise<boolean> {
  if (!(await lstat(path).catch(() => undefined))?.isSocket()) return false;
  return new Promise((resolve) => {
    const probe = net.connect({ path });
    probe.once("connect", () => {
      probe.destroy();
      resolve(false);
    });
    probe.once("error", (e: NodeJS.ErrnoException) => resolve(e.code === "ECONNREFUSED"));
  });
}
