/**
 * The client end of distributed mode: a private Unix socket that looks like a local
 * exporter session. Every connection to it is dialled separately (one Dial, one
 * router token, one router stream), as upstream's `jmp shell` does, so gRPC
 * clients use it exactly as they use a local session socket.
 */
import { rmSync } from "node:fs";
import * as net from "node:net";
import { join } from "node:path";
import { makePrivateDir } from "../common/private-dir.ts";
import { pipeSocketThroughRouter } from "../common/router-pipe.ts";
import type { TlsSettings } from "../common/tls.ts";

export interface TunnelOptions {
  /**
   * ControllerService.Dial for the lease: where the router is and the token for
   * one stream. `signal` aborts when the tunnel closes.
   */
  dial: (signal: AbortSignal) => Promise<{ endpoint: string; token: string }>;
  tls: TlsSettings;
  /** Where the private directory holding the socket goes (default: the system temp dir). */
  socketDir?: string;
  /** A connection that could not be dialled or broke; only that connection is closed. */
  onError?: (e: Error) => void;
}

export interface Tunnel {
  socketPath: string;
  close(): Promise<void>;
}

export async function openTunnel(opts: TunnelOptions): Promise<Tunnel> {
  // A 0700 directory: nobody else can reach the lease through it.
  const dir = makePrivateDir("jmp-tunnel-", opts.socketDir);
  const socketPath = join(dir, "session.sock");
  const stop = new AbortController();
  const active = new Set<Promise<void>>();
  const closed = new Promise<never>((_, reject) => {
    stop.signal.addEventListener("abort", () => reject(new Error("the tunnel is closed")), { once: true });
  });
  closed.catch(() => {});

  const carry = async (conn: net.Socket) => {
    try {
      const { endpoint, token } = await Promise.race([opts.dial(stop.signal), closed]);
      await pipeSocketThroughRouter(conn, { endpoint, token, tls: opts.tls, signal: stop.signal });
    } catch (e) {
      conn.destroy();
      if (!stop.signal.aborted) opts.onError?.(e as Error);
    }
  };
  // Half-open: a client that finished sending may still be reading the answer.
  const server = net.createServer({ allowHalfOpen: true }, (conn) => {
    const job = carry(conn);
    active.add(job);
    void job.finally(() => active.delete(job));
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(socketPath, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  let closing: Promise<void> | undefined;
  return {
    socketPath,
    close: () =>
      (closing ??= (async () => {
        stop.abort("the tunnel is closing");
        await new Promise<void>((resolve) => server.close(() => resolve()));
        await Promise.all(active);
        rmSync(dir, { recursive: true, force: true });
      })()),
  };
}
