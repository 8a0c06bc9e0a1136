/**
 * `connect()` and `lease()`: a board's client tree for a script or a test, typed
 * by the drivers you name, given back when you are done — also when the test
 * process is interrupted, and (through a watchdog process) when it is killed.
 */
import { registerBuiltinClients } from "../../drivers/clients.ts";
import { connectSession, sessionFromEnv } from "../client/session-client.ts";
import type { ClientInit, DriverClient } from "../driver/client.ts";
import { ClientRegistry } from "../driver/registry.ts";

type ClientClass = abstract new (init: ClientInit) => DriverClient;
/** The drivers a test uses, by name, with the client class each must be. */
export type DriverShape = Record<string, ClientClass>;
export type Typed<S extends DriverShape> = { readonly [K in keyof S]: InstanceType<S[K]> };

export interface BoardInfo {
  /** The root of the exporter's client tree (every driver is under it). */
  root: DriverClient;
  /** The lease in use, when there is one. */
  lease?: string;
  exporter?: string;
  labels: Record<string, string>;
  /** Ends the session and releases a lease this process created. Idempotent. */
  close(): Promise<void>;
}

export type Board<S extends DriverShape> = BoardInfo & Typed<S> & AsyncDisposable;

function typed<S extends DriverShape>(info: BoardInfo, drivers: S | undefined): Board<S> {
  const board: Record<string | symbol, unknown> = { ...info, [Symbol.asyncDispose]: info.close };
  for (const [name, cls] of Object.entries(drivers ?? {})) board[name] = info.root.child(name, cls);
  return board as Board<S>;
}

function parseLabels(text: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of (text ?? "").split(",")) {
    const i = pair.indexOf("=");
    if (i > 0) out[pair.slice(0, i)] = pair.slice(i + 1);
  }
  return out;
}

export interface ConnectOptions<S extends DriverShape> {
  /** Drivers to check and expose as typed properties: `{ power: PowerClient }`. */
  drivers?: S;
  /** The session to use; default `$JUMPSTARTER_HOST` (set inside `jmp shell`). */
  host?: string;
}

/** The session of the `jmp shell` this runs in. */
export async function connect<S extends DriverShape = {}>(opts: ConnectOptions<S> = {}): Promise<Board<S>> {
  const address = sessionFromEnv(opts.host ? { ...process.env, JUMPSTARTER_HOST: opts.host } : process.env);
  if (!address) throw new Error("connect() needs a session: run inside 'jmp shell' (JUMPSTARTER_HOST is not set), or use lease()");
  const { root, close } = await connectSession(address, registerBuiltinClients(new ClientRegistry()));
  return typed({
    root,
    lease: process.env.JMP_LEASE || undefined,
    exporter: process.env.JMP_EXPORTER || undefined,
    labels: parseLabels(process.env.JMP_EXPORTER_LABELS),
    // The shell holds the lease; closing here only drops our connection.
    close: async () => close(),
  }, opts.drivers);
}

export interface LeaseOptions<S extends DriverShape> {
  /** A label selector: `board=rpi4`. */
  selector?: string;
  /** Or a named exporter. */
  exporter?: string;
  /** How long to hold it: `30m`, `1h`, or milliseconds (default 30m). */
  duration?: string | number;
  /** Client config alias or file; default: the environment, then the current client. */
  client?: string;
  clientConfig?: string;
  /** How long to wait for a free exporter, in milliseconds (default: the client config's acquisition timeout). */
  timeout?: number;
  drivers?: S;
  /** Told why the lease waits, each time the reason changes. */
  onWait?: (reason: string) => void;
  /**
   * Extend the lease while the board is open, before it ends, by its duration each
   * time, as far as the controller allows (a refusal is logged once, then the lease
   * runs to its end). A controller restart meanwhile is waited through.
   */
  autoExtend?: boolean;
  /**
   * Told 5 minutes and 1 minute before the lease ends (once each, while it is not
   * being extended), with the time left in milliseconds. Default: a warning on
   * stderr naming the lease and how to extend it.
   */
  onEnding?: (remainingMs: number) => void;
}

/**
 * Leases a matching exporter and returns its typed client tree; `await using
 * board = await lease(…)` gives it back at the end of the scope. Inside
 * `jmp shell` it uses the shell's session instead (the shell holds the lease).
 */
export async function lease<S extends DriverShape = {}>(opts: LeaseOptions<S>): Promise<Board<S>> {
  if (process.env.JUMPSTARTER_HOST) return connect({ drivers: opts.drivers });
  const [{ openController }, { leaseTarget }, { acquireSession }, { startLeaseWatchdog }] = await Promise.all([
    import("../client/controller.ts"), import("../client/lease-options.ts"), import("../client/leased-session.ts"),
    import("../client/lease-watchdog.ts"),
  ]);
  const target = leaseTarget(
    { selector: opts.selector, exporterName: opts.exporter, duration: opts.duration ?? "30m" },
    { selector: "a selector", exporter: "an exporter", duration: "duration" },
  );
  const connection = openController({ client: opts.client, clientConfig: opts.clientConfig });
  let watchdog: { stop(): void } | undefined;
  let leased;
  try {
    leased = await acquireSession(connection, connection.config, registerBuiltinClients(new ClientRegistry()), target, {
      timeoutMs: opts.timeout,
      onWait: opts.onWait,
      onLease: (hold) => (watchdog = startLeaseWatchdog(hold.name, connection.config.file)),
      life: { autoExtend: opts.autoExtend, onEnding: opts.onEnding && ((remainingMs) => opts.onEnding!(remainingMs)) },
    });
  } catch (e) {
    watchdog?.stop();
    connection.close();
    throw e;
  }
  let closing: Promise<void> | undefined;
  const close = () => (closing ??= (async () => {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    process.off("beforeExit", onExit);
    await leased.close();
    watchdog?.stop();
    connection.close();
  })());
  // An interrupted test run still gives the board back.
  const onSignal = (signal: NodeJS.Signals) => {
    void close().finally(() => process.exit(signal === "SIGINT" ? 130 : 143));
  };
  const onExit = () => void close();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  process.once("beforeExit", onExit);
  return typed({ root: leased.session.root, lease: leased.lease.name, exporter: leased.lease.exporter, labels: leased.labels, close }, opts.drivers);
}
