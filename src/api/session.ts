/**
 * `connect()` and `lease()`: a board's client tree for a script or a test, typed
 * by the drivers you name, given back when you are done — also when the test
 * process is interrupted, and (through a watchdog process) when it is killed.
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { registerBuiltinClients } from "../../drivers/catalog.ts";
import { connectSession } from "../client/session-client.ts";
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
  const host = opts.host ?? process.env.JUMPSTARTER_HOST;
  if (!host) throw new Error("connect() needs a session: run inside 'jmp shell' (JUMPSTARTER_HOST is not set), or use lease()");
  const { root, close } = await connectSession(
    {
      host,
      passphrase: process.env.JMP_GRPC_PASSPHRASE,
      insecure: process.env.JMP_GRPC_INSECURE === "1",
      caFile: process.env.JMP_TLS_CA,
    },
    registerBuiltinClients(new ClientRegistry()),
  );
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
}

/**
 * Leases a matching exporter and returns its typed client tree; `await using
 * board = await lease(…)` gives it back at the end of the scope. Inside
 * `jmp shell` it uses the shell's session instead (the shell holds the lease).
 */
export async function lease<S extends DriverShape = {}>(opts: LeaseOptions<S>): Promise<Board<S>> {
  if (process.env.JUMPSTARTER_HOST) return connect({ drivers: opts.drivers });
  const [{ resolveClientConfig }, { connectController }, { LeaseApi }, { openLeasedSession }, { parseDuration }] = await Promise.all([
    import("../common/client-config.ts"), import("../client/controller-client.ts"), import("../client/leases.ts"),
    import("../client/leased-session.ts"), import("../common/duration.ts"),
  ]);
  const config = resolveClientConfig({ client: opts.client, clientConfig: opts.clientConfig }, process.env);
  if (!config.endpoint || !config.token) throw new Error(`${config.file}: needs an endpoint and a token to lease`);
  const controller = connectController({
    endpoint: config.endpoint, token: config.token, namespace: config.metadata.namespace ?? "default",
    name: config.metadata.name ?? "", tls: config.tls,
  });
  const api = new LeaseApi(controller);
  const durationMs = typeof opts.duration === "number" ? opts.duration : parseDuration(opts.duration ?? "30m", "duration");
  if (!opts.selector && !opts.exporter) throw new Error("lease() needs a selector or an exporter");
  let view = await api.create({ selector: opts.selector, exporterName: opts.exporter, durationMs });
  const watchdog = startWatchdog(view.name, config.file);
  const giveBack = async () => {
    watchdog.stop();
    await api.release(view.name).catch(() => {});
  };
  try {
    view = await api.waitReady(view.name, {
      timeoutMs: opts.timeout ?? config.leases.acquisition_timeout * 1000,
      onWait: (v) => opts.onWait?.(`${v.state}${v.reason ? ` (${v.reason})` : ""}${v.message ? `: ${v.message}` : ""}`),
    });
  } catch (e) {
    await giveBack();
    throw e;
  }
  let leased;
  try {
    leased = await openLeasedSession(controller, config, registerBuiltinClients(new ClientRegistry()), view, true);
  } catch (e) {
    await giveBack();
    throw e;
  }
  let closing: Promise<void> | undefined;
  const close = () => (closing ??= (async () => {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    process.off("beforeExit", onExit);
    await leased.close();
    watchdog.stop();
  })());
  // An interrupted test run still gives the board back.
  const onSignal = (signal: NodeJS.Signals) => {
    void close().finally(() => process.exit(signal === "SIGINT" ? 130 : 143));
  };
  const onExit = () => void close();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  process.once("beforeExit", onExit);
  const exporter = view.exporter;
  let labels: Record<string, string> = {};
  try {
    labels = (await controller.clients.getExporter({ name: `namespaces/${controller.address.namespace}/exporters/${exporter}` })).labels;
  } catch {
    // Labels are informational.
  }
  return typed({ root: leased.session.root, lease: view.name, exporter, labels, close }, opts.drivers);
}

/**
 * A detached process that releases the lease if this process dies without doing
 * so (SIGKILL, a crash): the lease is then gone within about a second instead of
 * at its expiry.
 */
function startWatchdog(leaseName: string, configFile: string): { stop(): void } {
  const script = join(import.meta.dir, "lease-watchdog.ts");
  const args = [script, String(process.pid), leaseName];
  if (configFile && !configFile.startsWith("<")) args.push(configFile);
  const child = spawn(process.execPath, args, { detached: true, stdio: "ignore", env: process.env });
  child.unref();
  return {
    stop: () => {
      try {
        child.kill("SIGTERM");
      } catch {
        // Already gone.
      }
    },
  };
}
