/**
 * `serve(driver)`: runs a driver (or an exporter config) in-process on a real
 * Unix socket and returns a real client for it — the way to test a driver without
 * a lab. Everything goes over the wire exactly as in `jmp shell`.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { registerBuiltinClients, BUILTIN_DRIVERS } from "../../drivers/catalog.ts";
import { connectSession } from "../client/session-client.ts";
import type { ExporterConfig } from "../common/exporter-config.ts";
import { buildDriverTree } from "../driver/build.ts";
import { DriverCatalog } from "../driver/catalog.ts";
import type { DriverClient } from "../driver/client.ts";
import type { Driver } from "../driver/driver.ts";
import { AllowList, ClientRegistry } from "../driver/registry.ts";
import { serveRoutes } from "../exporter/serve.ts";
import { ExporterSession } from "../exporter/session.ts";

export interface Served<C extends DriverClient = DriverClient> extends AsyncDisposable {
  client: C;
  session: ExporterSession;
  socket: string;
  close(): Promise<void>;
}

/** `localFiles`: the session reads files its client names, as local mode's does (SessionOptions.localFiles). */
export async function serve<C extends DriverClient = DriverClient>(
  what: Driver | Pick<ExporterConfig, "file" | "export" | "description">,
  opts: { localFiles?: boolean } = {},
): Promise<Served<C>> {
  const root = "export" in what ? buildDriverTree(what, new DriverCatalog(BUILTIN_DRIVERS)) : what;
  const dir = mkdtempSync(join(tmpdir(), "jmp-serve-"));
  const socket = join(dir, "session.sock");
  const session = new ExporterSession({ root, localFiles: opts.localFiles });
  const served = await serveRoutes(session, { unix: socket });
  const registry = registerBuiltinClients(new ClientRegistry());
  let closed = false;
  let dropConnection = () => {};
  const close = async () => {
    if (closed) return;
    closed = true;
    dropConnection();
    await served.close();
    await session.close();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const connected = await connectSession({ host: socket }, registry, new AllowList([], true));
    const client = connected.root;
    dropConnection = connected.close;
    return { client: client as C, session, socket, close, [Symbol.asyncDispose]: close };
  } catch (e) {
    await close();
    throw e;
  }
}
