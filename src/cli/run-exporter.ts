/** `jmp run` (also `jmp exporter run`): serve an exporter config. */
import { defineCommand } from "../common/command.ts";
import { META } from "./command-meta.ts";
import { UserError } from "../common/errors.ts";
import { applyDriversDirArgs, DRIVERS_DIR_ARG } from "./common.ts";

export default defineCommand({
  meta: META.run,
  args: {
    exporterConfig: { type: "string", description: "the exporter config file", valueHint: "FILE" },
    exporter: { type: "string", description: "the exporter config with this alias", valueHint: "ALIAS" },
    tlsGrpcListener: { type: "string", description: "direct mode: listen on [HOST:]PORT", valueHint: "[HOST:]PORT" },
    tlsCert: { type: "string", description: "direct mode: TLS certificate (PEM)", valueHint: "FILE" },
    tlsKey: { type: "string", description: "direct mode: TLS private key (PEM)", valueHint: "FILE" },
    tlsSelfSigned: { type: "boolean", description: "direct mode: TLS with a CA and certificate made once and kept in the state dir; clients verify with the ca.pem it names" },
    tlsGrpcInsecure: { type: "boolean", description: "direct mode: plain h2c, no TLS" },
    passphrase: { type: "string", description: "direct mode: require this passphrase from clients (never logged)" },
    metricsListen: { type: "string", description: "serve Prometheus metrics at http://ADDR/metrics (HTTP/1.1, no TLS, no auth)", valueHint: "[HOST:]PORT" },
    exitOnLeaseEnd: { type: "boolean", description: "exit once the current lease has ended (and its afterLease hook has run), as exitOnLeaseEnd: true in the config" },
    ...DRIVERS_DIR_ARG,
  },
  async run({ args }) {
    // As upstream: a supervisor restarts the worker on clean exits and gives up on a
    // crash loop, so systemd's own backoff takes over. The supervisor reads no config:
    // the worker does, passes a mistake on as its exit code 2 (which ends the
    // supervisor with it), and tells the supervisor its restart policy. So the
    // process that stays up all day loads only this command line's parser.
    const { enterWorker, superviseExporter, tellSupervisor } = await import("../exporter/supervise.ts");
    if (!enterWorker()) return void (process.exitCode = await superviseExporter());
    // The supervisor started this worker without JSC's top JIT tier (jit-tier.ts).
    (await import("../common/jit-tier.ts")).startedWithoutTopTier();
    await applyDriversDirArgs(args);
    const { exporterConfigFromArgs, loadCatalog, parseListenAddress, readFileArg } = await import("./common.ts");
    const loaded = await exporterConfigFromArgs(args);
    if (!loaded) throw new UserError("jmp run needs --exporter ALIAS or --exporter-config FILE", 2);
    // The supervisor follows it too: a worker that exits after its lease is not started again.
    const config = args.exitOnLeaseEnd ? { ...loaded, exitOnLeaseEnd: true } : loaded;
    // A missing hook script or interpreter is a config error now, not at the first lease.
    (await import("../exporter/hook-config.ts")).resolveHooks(config);
    const metricsAt = args.metricsListen ? parseListenAddress(args.metricsListen, "--metrics-listen") : undefined;
    tellSupervisor(config);
    if (metricsAt) await listenMetrics(metricsAt);
    if (!args.tlsGrpcListener) {
      if (args.tlsCert || args.tlsKey || args.tlsSelfSigned || args.tlsGrpcInsecure || args.passphrase) {
        throw new UserError("--tls-cert, --tls-key, --tls-self-signed, --tls-grpc-insecure and --passphrase belong to direct mode: add --tls-grpc-listener [HOST:]PORT", 2);
      }
      return runDistributed(config, await loadCatalog({ config }));
    }
    const { host, port } = parseListenAddress(args.tlsGrpcListener, "--tls-grpc-listener");
    const tlsPair = Boolean(args.tlsCert) || Boolean(args.tlsKey);
    const choices = [tlsPair, Boolean(args.tlsSelfSigned), Boolean(args.tlsGrpcInsecure)].filter(Boolean).length;
    if (choices > 1) throw new UserError("give one of --tls-cert/--tls-key, --tls-self-signed or --tls-grpc-insecure", 2);
    if (choices === 0) {
      throw new UserError("direct mode needs --tls-cert FILE --tls-key FILE, --tls-self-signed, or --tls-grpc-insecure for plain h2c", 2);
    }
    if (tlsPair && !(args.tlsCert && args.tlsKey)) throw new UserError("--tls-cert and --tls-key go together", 2);
    let tls = tlsPair ? { cert: await readFileArg(args.tlsCert!, "--tls-cert"), key: await readFileArg(args.tlsKey!, "--tls-key") } : undefined;
    let caFile: string | undefined;
    if (args.tlsSelfSigned) {
      const { selfSignedTls } = await import("../exporter/self-signed.ts");
      const made = await selfSignedTls(config.metadata.name ?? config.alias ?? "direct", { listenHost: host === "0.0.0.0" || host === "::" ? undefined : host });
      tls = { cert: made.cert, key: made.key };
      caFile = made.caFile;
    }
    const passphrase = args.passphrase ?? process.env.JMP_GRPC_PASSPHRASE;
    const [{ startSession }, { getLogger }] = await Promise.all([import("../exporter/local.ts"), import("../common/log.ts")]);
    const log = getLogger("exporter");
    let running;
    try {
      running = await startSession(config, await loadCatalog({ config }), { host, port, tls }, { passphrase, echoLogs: true });
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (err.code === "EADDRINUSE") throw new UserError(`cannot listen on ${host}:${port}: the address is in use`, 1);
      if (err.code === "EACCES") throw new UserError(`cannot listen on ${host}:${port}: permission denied`, 1);
      if (err.message?.includes("PEM") || err.message?.includes("key")) throw new UserError(`cannot use the TLS certificate/key: ${err.message}`, 2);
      throw e;
    }
    log.info(`serving ${config.file} on ${running.address} (${tls ? "TLS" : "h2c, no TLS"}${passphrase ? ", passphrase required" : ""})`);
    if (caFile) log.info(`clients verify this exporter with its CA: copy ${caFile} and use 'jmp shell --tls-grpc HOST:${port} --tls-ca ca.pem'`);
    if (args.exitOnLeaseEnd || config.exitOnLeaseEnd) log.info("exitOnLeaseEnd does nothing in direct mode: there is no lease to end");
    process.exitCode = await serveDirect(running, log);
  },
});

/** The worker's metrics listener: it lives as long as the worker (the supervisor restarts both). */
async function listenMetrics(at: { host: string; port: number }): Promise<void> {
  const [{ startExporterMetrics }, { getLogger }] = await Promise.all([import("../exporter/metrics.ts"), import("../common/log.ts")]);
  try {
    const served = await startExporterMetrics(at);
    getLogger("exporter").info(`metrics at http://${served.address}/metrics`);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const where = `${at.host}:${at.port}`;
    if (code === "EADDRINUSE") throw new UserError(`--metrics-listen ${where}: the address is in use; choose another port`, 1);
    if (code === "EACCES") throw new UserError(`--metrics-listen ${where}: permission denied (ports below 1024 need root)`, 1);
    throw new UserError(`--metrics-listen ${where}: ${(e as Error).message}`, 1);
  }
}

/**
 * Direct mode's one lease, as upstream's standalone exporter: the beforeLease hook
 * once at the start (clients that connect meanwhile wait for it), the afterLease
 * hook when a signal stops the exporter. Resolves to the exit code: 1 when a hook
 * failed with `onFailure: exit`, else as the signal says (SIGHUP: 0).
 */
async function serveDirect(running: import("../exporter/local.ts").RunningSession, log: import("../common/log.ts").Logger): Promise<number> {
  const { constants } = await import("node:os");
  const ctx = { leaseName: "direct", clientName: "" };
  const stopping = new AbortController();
  let signal: NodeJS.Signals | undefined;
  let wake!: () => void;
  const stopped = new Promise<void>((resolve) => (wake = resolve));
  const onSignal = (s: NodeJS.Signals) => {
    signal ??= s;
    stopping.abort();
    wake();
  };
  const signals = ["SIGINT", "SIGTERM", "SIGHUP"] as const;
  for (const s of signals) process.on(s, onSignal);
  try {
    // A signal while it runs ends the hook's process group.
    const before = await running.beforeLease(ctx, stopping.signal);
    const exitNow = !signal && !before.proceed && before.onFailure === "exit";
    if (!before.proceed && !signal) log.error(exitNow ? `${before.message}: stopping` : `${before.message}; clients are refused until the exporter is restarted`);
    if (!exitNow) {
      await stopped;
      log.info(`${signal}: stopping`);
    }
    const after = await running.afterLease(ctx);
    await running.close();
    if (exitNow || (after?.proceed === false && after.onFailure === "exit")) return 1;
    return signal === "SIGHUP" ? 0 : 128 + constants.signals[signal!];
  } finally {
    for (const s of signals) process.off(s, onSignal);
  }
}

/** Distributed mode: register with the controller named in the config and serve its leases. */
async function runDistributed(config: import("../common/exporter-config.ts").ExporterConfig, catalog: import("../driver/catalog.ts").DriverCatalog) {
  if (!config.endpoint) {
    throw new UserError(`${config.file}: endpoint: missing; the controller's HOST:PORT (or serve directly with --tls-grpc-listener)`, 2);
  }
  if (!config.token) throw new UserError(`${config.file}: token: missing; 'jmp admin create exporter NAME --save' writes one`, 2);
  if (!config.metadata.name) throw new UserError(`${config.file}: metadata.name: missing; the exporter's name`, 2);
  const [{ runAgent }, { constants }] = await Promise.all([import("../exporter/agent.ts"), import("node:os")]);
  const abort = new AbortController();
  let stopSignal: NodeJS.Signals | undefined;
  const agent = runAgent({
    config,
    catalog,
    connect: {
      endpoint: config.endpoint,
      token: config.token,
      namespace: config.metadata.namespace ?? "default",
      name: config.metadata.name,
      tls: config.tls,
    },
    signal: abort.signal,
  });
  const onStop = (s: NodeJS.Signals) => () => {
    stopSignal = s;
    abort.abort();
  };
  const onHup = () => agent.finishLeaseThenStop();
  process.on("SIGINT", onStop("SIGINT"));
  process.on("SIGTERM", onStop("SIGTERM"));
  process.on("SIGHUP", onHup);
  try {
    await agent.done;
  } finally {
    process.off("SIGHUP", onHup);
  }
  if (stopSignal) process.exitCode = 128 + constants.signals[stopSignal];
}
