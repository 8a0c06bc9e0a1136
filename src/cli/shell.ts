/** `jmp shell`: a shell (or command) attached to an exporter session. */
import { defineCommand } from "citty";
import { UserError } from "../common/errors.ts";
import { repeatable } from "../common/repeatable.ts";
import { applyDriversDirArgs, DRIVERS_DIR_ARG } from "./common.ts";
import { passthrough } from "./run.ts";

export default defineCommand({
  meta: { name: "shell", description: "Spawn a shell (or run a command) with access to an exporter's drivers", alias: ["s", "sh"] },
  args: {
    exporterConfig: { type: "string", description: "local mode: run the exporter from this config file in-process", valueHint: "FILE" },
    exporter: { type: "string", description: "local mode: the exporter config with this alias", valueHint: "ALIAS" },
    tlsGrpc: { type: "string", description: "direct mode: the exporter's HOST:PORT", valueHint: "HOST:PORT" },
    tlsGrpcInsecure: { type: "boolean", description: "direct mode: plain h2c, no TLS" },
    tlsCa: { type: "string", description: "direct mode: CA bundle to verify the exporter (else SSL_CERT_FILE, else system roots)", valueHint: "FILE" },
    passphrase: { type: "string", description: "direct mode: the exporter's passphrase (or JMP_GRPC_PASSPHRASE)" },
    exporterLogs: { type: "boolean", description: "show the exporter's driver logs" },
    selector: repeatable({ type: "string", alias: "l", description: "distributed: lease an exporter matching this label selector" }),
    name: { type: "string", alias: "n", description: "distributed: lease this exporter" },
    lease: { type: "string", description: "distributed: use this existing lease" },
    duration: { type: "string", description: "distributed: lease duration", default: "30m" },
    client: { type: "string", description: "distributed: use the client config with this alias", valueHint: "ALIAS" },
    clientConfig: { type: "string", description: "distributed: use this client config file", valueHint: "FILE" },
    ...DRIVERS_DIR_ARG,
  },
  async run({ args }) {
    await applyDriversDirArgs(args);
    const command = passthrough();
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
        if (config.motd && command.length === 0) console.error(config.motd.trimEnd());
        code = await runShell({
          host: running.address,
          command,
          name: config.metadata.name ?? config.alias ?? "local",
          env: { JMP_DRIVERS_ALLOW: "UNSAFE", _JMP_SUPPRESS_DRIVER_WARNINGS: "1" },
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
      const { report } = await connectSession(addr, await loadRegistry());
      const env: Record<string, string> = {};
      if (passphrase) env.JMP_GRPC_PASSPHRASE = passphrase;
      if (args.tlsGrpcInsecure) env.JMP_GRPC_INSECURE = "1";
      if (args.tlsCa) env.JMP_TLS_CA = args.tlsCa;
      if (report.motd && command.length === 0) console.error(report.motd.trimEnd());
      process.exitCode = await runShell({ host: args.tlsGrpc, command, env, name: args.tlsGrpc });
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
      { selector, exporterName: args.name, leaseName, duration: String(args.duration) },
      { selector: "-l SELECTOR", exporter: "-n EXPORTER", lease: "--lease NAME", duration: "--duration" },
    );
    const [{ loadRegistry }, { runRemoteShell }] = await Promise.all([import("./common.ts"), import("../client/remote-shell.ts")]);
    const controller = await controllerFromArgs(args);
    process.exitCode = await runRemoteShell({ controller, config: controller.config, registry: await loadRegistry(), target, command });
  },
});
