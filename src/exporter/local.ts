/**
 * Local and direct serving: a session with a fresh driver tree from an exporter
 * config, on a private Unix socket (local mode) or a TCP listener (direct mode).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ExporterConfig } from "../common/exporter-config.ts";
import { getLogger } from "../common/log.ts";
import { buildDriverTree } from "../driver/build.ts";
import type { DriverCatalog } from "../driver/catalog.ts";
import { type Listen, serveRoutes } from "./serve.ts";
import { ExporterSession } from "./session.ts";

export interface RunningSession {
  session: ExporterSession;
  /** Socket path (local) or host:port (direct). */
  address: string;
  close(): Promise<void>;
}

export async function startSession(
  config: ExporterConfig,
  catalog: DriverCatalog,
  listen: Listen | "private-socket",
  opts: { passphrase?: string; echoLogs?: boolean } = {},
): Promise<RunningSession> {
  const root = buildDriverTree(config, catalog);
  const session = new ExporterSession({
    root,
    motd: config.motd,
    labels: config.metadata.name ? { "jumpstarter.dev/name": config.metadata.name } : {},
    echoLogs: opts.echoLogs,
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
  return {
    session,
    address: served.address,
    close: async () => {
      await served.close();
      await session.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}
