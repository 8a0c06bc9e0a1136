/** `jmp router run`: a standalone router for scale-out, trusting the controller's router key. */
import { defineCommand } from "../common/command.ts";
import { META } from "./command-meta.ts";

const run = defineCommand({
  meta: { name: "run", description: "Run a standalone router" },
  args: {
    listen: { type: "string", description: "listen on [HOST:]PORT", default: "0.0.0.0:8083" },
    dataDir: { type: "string", description: "holds the controller's router-key and a server certificate (server.pem, server-key.pem) for this host (default: the controller's data dir)", valueHint: "DIR" },
    controller: { type: "string", description: "the controller's HOST:PORT (routers need no connection to it; for the log)", valueHint: "HOST:PORT" },
  },
  async run({ args }) {
    (await import("../common/jit-tier.ts")).runWithoutTopTier();
    const [{ join }, { parseListenAddress, readFileArg }, { defaultDataDir }, { ROUTER_SHUTDOWN, runRouter }, { RouterTokens }, { DATA_FILES }, { getLogger }, { constants }] = await Promise.all([
      import("node:path"), import("./common.ts"), import("../common/paths.ts"), import("../router/run.ts"),
      import("../controller/auth.ts"), import("../controller/data-dir.ts"), import("../common/log.ts"), import("node:os"),
    ]);
    const dir = args.dataDir ?? defaultDataDir();
    const tokens = RouterTokens.fromFile(join(dir, DATA_FILES.routerKey));
    const router = await runRouter({
      listen: parseListenAddress(args.listen, "--listen"),
      tls: { cert: await readFileArg(join(dir, DATA_FILES.serverCert), "certificate"), key: await readFileArg(join(dir, DATA_FILES.serverKey), "key") },
      verify: async (token) => {
        const g = await tokens.verifyRouterToken(token);
        return { subject: g.streamId, lease: `${g.namespace}/${g.lease}`, expiresAt: g.expiresAt };
      },
    });
    const log = getLogger("router");
    log.info(`listening on ${router.address}${args.controller ? ` for the controller at ${args.controller}` : ""}`);
    const signal = await new Promise<NodeJS.Signals>((resolve) => {
      for (const s of ["SIGINT", "SIGTERM"] as const) process.once(s, () => resolve(s));
    });
    log.info(`${signal}: stopping`);
    await router.close(ROUTER_SHUTDOWN);
    log.info("stopped");
    process.exitCode = 128 + constants.signals[signal];
  },
});

export default defineCommand({
  meta: META.router,
  subCommands: { run },
});
