/**
 * Local and direct serving: a session with a fresh driver tree from an exporter
 * config, on a private Unix socket (local mode) or a TCP listener (direct mode).
 * Hooks run as upstream's standalone exporter runs them: the whole run is one
 * lease, beforeLease at its start (clients wait meanwhile), afterLease at its end.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ExporterConfig } from "../common/exporter-config.ts";
import { getLogger } from "../common/log.ts";
import { buildDriverTree } from "../driver/build.ts";
import type { DriverCatalog } from "../driver/catalog.ts";
import { ExporterStatus } from "../gen/jumpstarter/v1/common_pb.ts";
import { ExporterHooks, type HookContext, type Verdict } from "./hooks.ts";
import { type Listen, serveRoutes } from "./serve.ts";
import { ExporterSession } from "./session.ts";

export interface RunningSession {
  session: ExporterSession;
  /** Socket path (local) or host:port (direct). */
  address: string;
  /** Runs the beforeLease hook, if any; the session is BEFORE_LEASE_HOOK until it has. */
  beforeLease(ctx: HookContext, signal?: AbortSignal): Promise<Verdict>;
  /** Runs the afterLease hook, if any and unless beforeLease failed; undefined when it did not run. */
  afterLease(ctx: HookContext, signal?: AbortSignal): Promise<Verdict | undefined>;
  close(): Promise<void>;
}

/** Nobody beyond the session to tell of a status: no controller here. */
const noReport = () => {};

export async function startSession(
  config: ExporterConfig,
  catalog: DriverCatalog,
  listen: Listen | "private-socket",
  opts: { passphrase?: string; echoLogs?: boolean } = {},
): Promise<RunningSession> {
  // Before any driver opens a device: a missing hook script is a config error (exit 2).
  const hooks = ExporterHooks.fromConfig(config);
  const root = buildDriverTree(config, catalog);
  const session = new ExporterSession({
    root,
    motd: config.motd,
    labels: config.metadata.name ? { "jumpstarter.dev/name": config.metadata.name } : {},
    echoLogs: opts.echoLogs,
    status: hooks.has("beforeLease") ? ExporterStatus.BEFORE_LEASE_HOOK : ExporterStatus.LEASE_READY,
    // Only this user reaches a private socket: its clients may hand files over by path.
    localFiles: listen === "private-socket",
  });
  let dir: string | undefined;
  let where: Listen;
  if (listen === "private-socket") {
    // A private 0700 directory: only this user can reach the session.
    dir = mkdtempSync(join(tmpdir(), "jmp-"));
    where = { unix: join(dir, "session.sock") };
  } else {
    where = listen;
  }
  const log = getLogger("exporter");
  let served;
  try {
    served = await serveRoutes(session, where, {
      passphrase: opts.passphrase,
      onRejected: (method) => log.warn(`refused ${method}: invalid or missing passphrase`),
    });
  } catch (e) {
    await session.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  let before: Verdict | undefined;
  return {
    session,
    address: served.address,
    beforeLease: async (ctx, signal) => (before = await hooks.beforeLease(session, ctx, noReport, signal)),
    afterLease: async (ctx, signal) => (before?.proceed === false ? undefined : await hooks.afterLease(session, ctx, noReport, signal)),
    close: async () => {
      await served.close();
      await session.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}
