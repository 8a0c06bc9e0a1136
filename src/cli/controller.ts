/** `jmp controller run`: the controller with its embedded router, state in one SQLite file or in a Kubernetes namespace. */
import { defineCommand } from "../common/command.ts";
import { META } from "./command-meta.ts";
import { UserError } from "../common/errors.ts";
import { repeatable } from "../common/repeatable.ts";
import { listArg } from "./client-context.ts";
import { controllerInstall as install } from "./install.ts";

const run = defineCommand({
  meta: { name: "run", description: "Run the controller (and an embedded router) until stopped" },
  args: {
    dataDir: { type: "string", description: "state, keys and certificates (default: /var/lib/jumpstarter as root, else ~/.local/share/jumpstarter)", valueHint: "DIR" },
    listen: { type: "string", description: "listen on [HOST:]PORT", default: "0.0.0.0:8082" },
    advertise: { type: "string", description: "the HOST:PORT clients and exporters use (default: this machine's name and the port)", valueHint: "HOST:PORT" },
    backend: { type: "string", description: "where the state lives: sqlite (a file in the data dir) or kubernetes (upstream's custom resources)", default: "sqlite" },
    kubeconfig: { type: "string", description: "with --backend kubernetes: the cluster (default: the pod's service account, else $KUBECONFIG, else ~/.kube/config)", valueHint: "FILE" },
    namespace: { type: "string", description: "with --backend kubernetes: the namespace (default: the pod's, else the kubeconfig context's)", valueHint: "NS" },
    routerEndpoint: repeatable({ type: "string", description: "hand out this router instead of the embedded one", valueHint: "HOST:PORT" }),
    auditKeep: { type: "string", description: "how long the audit log ('jmp admin audit') keeps entries", default: "30d", valueHint: "DURATION" },
    auditMaxEntries: { type: "string", description: "at most this many audit entries are kept, the oldest dropped first", default: "100000", valueHint: "N" },
  },
  async run({ args }) {
    if (args.backend !== "sqlite" && args.backend !== "kubernetes") {
      throw new UserError(`'--backend' must be sqlite or kubernetes: got '${args.backend}'`, 2);
    }
    if (args.backend === "sqlite" && (args.kubeconfig || args.namespace)) {
      throw new UserError(`'--${args.kubeconfig ? "kubeconfig" : "namespace"}' needs --backend kubernetes`, 2);
    }
    (await import("../common/jit-tier.ts")).runWithoutTopTier();
    const [{ durationArg, parseListenAddress, wholeNumberArg }, { defaultDataDir }, { runController }, { routerHandler }, { constants }] = await Promise.all([
      import("./common.ts"), import("../common/paths.ts"), import("../controller/server.ts"), import("../router/router.ts"), import("node:os"),
    ]);
    const listen = parseListenAddress(args.listen, "--listen");
    const auditRetention = {
      maxAgeMs: durationArg(args.auditKeep, "--audit-keep"),
      maxEntries: wholeNumberArg(args.auditMaxEntries, "--audit-max-entries", 1),
    };
    const routerEndpoints = listArg(args.routerEndpoint);
    const abort = new AbortController();
    let signal: NodeJS.Signals | undefined;
    for (const s of ["SIGINT", "SIGTERM"] as const) process.once(s, () => { signal = s; abort.abort(); });
    await runController({
      dataDir: args.dataDir ?? defaultDataDir(),
      listen,
      advertise: args.advertise,
      routerEndpoints,
      signal: abort.signal,
      backend: args.backend === "kubernetes" ? { kind: "kubernetes", kubeconfig: args.kubeconfig, namespace: args.namespace } : { kind: "sqlite" },
      auditRetention,
      // Without external routers, the controller's own port relays streams too.
      embeddedRouter: routerEndpoints.length ? undefined : (tokens) => routerHandler({
        verify: async (token) => {
          const g = await tokens.verifyRouterToken(token);
          return { subject: g.streamId, lease: `${g.namespace}/${g.lease}`, expiresAt: g.expiresAt };
        },
      }),
    });
    if (signal) process.exitCode = 128 + constants.signals[signal];
  },
});

export default defineCommand({
  meta: META.controller,
  subCommands: { run, install, manifests: () => import("./controller-manifests.ts").then((m) => m.default) },
});
