/** `jmp shell`: a shell (or command) attached to an exporter session. */
import { defineCommand } from "../common/command.ts";
import { META } from "./command-meta.ts";
import { UserError } from "../common/errors.ts";
import { repeatable } from "../common/repeatable.ts";
import { applyDriversDirArgs, DRIVERS_DIR_ARG } from "./common.ts";
import { passthrough } from "./run.ts";

export default defineCommand({
  meta: META.shell,
  args: {
    exporterConfig: { type: "string", description: "local mode: run the exporter from this config file in-process", valueHint: "FILE" },
    exporter: { type: "string", description: "local mode: the exporter config with this alias", valueHint: "ALIAS" },
    tlsGrpc: { type: "string", description: "direct mode: the exporter's HOST:PORT", valueHint: "HOST:PORT" },
    tlsGrpcInsecure: { type: "boolean", description: "direct mode: plain h2c, no TLS" },
    tlsCa: { type: "string", description: "direct mode: CA bundle to verify the exporter (else SSL_CERT_FILE, else system roots)", valueHint: "FILE" },
    passphrase: { type: "string", description: "direct mode: the exporter's passphrase (or JMP_GRPC_PASSPHRASE)" },
    exporterLogs: { type: "boolean", description: "show the exporter's driver logs (its hooks' output shows anyway)" },
    selector: repeatable({ type: "string", alias: "l", description: "distributed: lease an exporter matching this label selector" }),
    name: { type: "string", alias: "n", description: "distributed: lease this exporter" },
    lease: { type: "string", description: "distributed: use this existing lease" },
    allowDisabled: { type: "boolean", description: "distributed: with -n, lease the exporter even if disabled or failing its health check (to investigate it)" },
    duration: { type: "string", description: "distributed: lease duration", default: "30m" },
    autoExtend: { type: "boolean", description: "distributed: extend the lease while the shell runs, by its duration each time, as far as the controller allows" },
    client: { type: "string", description: "distributed: use the client config with this alias", valueHint: "ALIAS" },
    clientConfig: { type: "string", description: "distributed: use this client config file", valueHint: "FILE" },
    ...DRIVERS_DIR_ARG,
  },
  async run({ args }) {
    await applyDriversDirArgs(args);
    const command = passthrough();
    if (args.autoExtend && (args.exporterConfig || args.exporter || args.tlsGrpc)) {
      throw new UserError("--auto-extend extends a lease: it goes with -l, -n or --lease (through a controller), not with a local or direct session", 2);
    }
    if (args.exporterConfig || args.exporter) {
      if (args.tlsGrpc) throw new UserError("--tls-grpc connects to a remote exporter; it cannot be combined with --exporter/--exporter-config", 2);
      const [{ exporterConfigFromArgs, loadCatalog }, { startSession }, { runShell }] = await Promise.all([
        import("./common.ts"),
        import("../exporter/local.ts"),
        import("../client/shell.ts"),
      ]);
      const config = (await exporterConfigFromArgs(args))!;
      const running = await startSession(config, await loadCatalog({ config }), "private-socket", { echoLogs: args.exporterLogs });
      let code: number;
      try {
        code = await runLocalLease(running, async () => {
          if (running.session.motd && command.length === 0) console.error(running.session.motd.trimEnd());
          return runShell({
            host: running.address,
            command,
            name: config.metadata.name ?? config.alias ?? "local",
            env: { JMP_DRIVERS_ALLOW: "UNSAFE", _JMP_SUPPRESS_DRIVER_WARNINGS: "1" },
          });
        });
      } finally {
        await running.close();
      }
      process.exitCode = code;
      return;
    }
    if (args.tlsGrpc) {
      const { isTcpAddress } = await import("../client/transport.ts");
      if (!isTcpAddress(args.tlsGrpc)) throw new UserError(`'--tls-grpc' takes the exporter's HOST:PORT: got '${args.tlsGrpc}'`, 2);
      const [{ connectSession }, { loadRegistry }, { runShell }] = await Promise.all([
        import("../client/session-client.ts"),
        import("./common.ts"),
        import("../client/shell.ts"),
      ]);
      const passphrase = args.passphrase ?? process.env.JMP_GRPC_PASSPHRASE;
      const addr = { host: args.tlsGrpc, insecure: Boolean(args.tlsGrpcInsecure), caFile: args.tlsCa, passphrase };
      // Fail here, with a clear message, rather than in the first `j` inside the shell.
      const session = await connectSession(addr, await loadRegistry());
      const [{ followExporterLogs, waitUntilReady }, { Progress }] = await Promise.all([
        import("../client/exporter-status.ts"), import("../client/progress.ts"),
      ]);
      const progress = new Progress();
      // The exporter's beforeLease hook may still run (it runs once, when the exporter starts).
      const stopLogs = followExporterLogs(session.portal, (line) => progress.note(line), { all: Boolean(args.exporterLogs) });
      try {
        const { warning } = await waitUntilReady(session.portal, args.tlsGrpc, { onWait: (why) => progress.update(why) });
        progress.clear();
        if (warning) console.error(`Warning: ${warning}`);
        const env: Record<string, string> = {};
        if (passphrase) env.JMP_GRPC_PASSPHRASE = passphrase;
        if (args.tlsGrpcInsecure) env.JMP_GRPC_INSECURE = "1";
        if (args.tlsCa) env.JMP_TLS_CA = args.tlsCa;
        const { motd } = await session.portal.getReport();
        if (motd && command.length === 0) console.error(motd.trimEnd());
        process.exitCode = await runShell({ host: args.tlsGrpc, command, env, name: args.tlsGrpc });
      } finally {
        progress.clear();
        await stopLogs(1000);
        session.close();
      }
      return;
    }
    const leaseName = args.lease ?? process.env.JMP_LEASE;
    const [{ selectorArg, controllerFromArgs }, { leaseTarget }] = await Promise.all([
      import("./client-context.ts"), import("../client/lease-options.ts"),
    ]);
    const selector = selectorArg(args.selector);
    if (!selector && !args.name && !leaseName) {
      throw new UserError(
        "jmp shell needs an exporter: -l SELECTOR, -n EXPORTER or --lease NAME (through a controller), --exporter-config FILE or --exporter ALIAS (local), or --tls-grpc HOST:PORT (direct)",
        2,
      );
    }
    const target = leaseTarget(
      { selector, exporterName: args.name, leaseName, duration: String(args.duration), allowDisabled: args.allowDisabled },
      { selector: "-l SELECTOR", exporter: "-n EXPORTER", lease: "--lease NAME", duration: "--duration" },
    );
    const [{ loadRegistry }, { runRemoteShell }] = await Promise.all([import("./common.ts"), import("../client/remote-shell.ts")]);
    const controller = await controllerFromArgs(args);
    process.exitCode = await runRemoteShell({
      controller, config: controller.config, registry: await loadRegistry(), target, command, exporterLogs: args.exporterLogs,
      autoExtend: args.autoExtend,
    });
  },
});

/**
 * Local mode's one lease: the beforeLease hook (a failure that ends the lease skips
 * the shell), the shell, the afterLease hook; its exit code is the shell's, or 1
 * when a hook failed with endLease or exit (a signal that cleanup went wrong). A
 * signal while a hook runs ends the hook's process group and this command.
 */
async function runLocalLease(running: import("../exporter/local.ts").RunningSession, shell: () => Promise<number>): Promise<number> {
  const { userInfo, constants } = await import("node:os");
  let user = process.env.USER ?? "";
  try {
    user = userInfo().username;
  } catch {
    // No passwd entry (a container): USER will do.
  }
  const ctx = { leaseName: "local", clientName: user };
  const stop = new AbortController();
  let signalled: NodeJS.Signals | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    signalled = sig;
    stop.abort();
  };
  const hookPhase = async <T>(fn: () => Promise<T>): Promise<T> => {
    for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(sig, onSignal);
    try {
      return await fn();
    } finally {
      for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.off(sig, onSignal);
    }
  };
  const before = await hookPhase(() => running.beforeLease(ctx, stop.signal));
  if (signalled) return 128 + constants.signals[signalled];
  if (!before.proceed) {
    console.error(`Error: ${before.message}; the shell was not started`);
    return 1;
  }
  if (before.warning) console.error(`Warning: ${before.warning}`);
  let code = await shell();
  const after = await hookPhase(() => running.afterLease(ctx, stop.signal));
  if (signalled) return 128 + constants.signals[signalled];
  if (after?.proceed === false) {
    console.error(`Error: ${after.message}`);
    if (code === 0) code = 1;
  } else if (after?.warning) {
    console.error(`Warning: ${after.warning}`);
  }
  return code;
}
