/**
 * The API server double as a process, for end-to-end tests that spawn dist/jmp:
 *   bun test/kube-apiserver/main.ts --port N --kubeconfig FILE [--namespace NS] [--watch-history N]
 * Writes the kubeconfig (admin token, the double's CA), prints one ready line with the URL,
 * and serves until SIGINT or SIGTERM. SIGUSR1 stops listening (state kept), SIGUSR2 listens again.
 */
import { parseArgs } from "node:util";
import { startKubeApiServer } from "./server.ts";

function fail(message: string): never {
  console.error(`kube-apiserver double: ${message}`);
  process.exit(2);
}

let values;
try {
  ({ values } = parseArgs({
    options: {
      port: { type: "string", default: "0" },
      kubeconfig: { type: "string" },
      namespace: { type: "string", default: "default" },
      "watch-history": { type: "string" },
    },
  }));
} catch (e) {
  fail((e as Error).message);
}
if (!values.kubeconfig) fail("--kubeconfig FILE is required");
const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`--port must be a port number: got '${values.port}'`);
const history = values["watch-history"] === undefined ? undefined : Number(values["watch-history"]);
if (history !== undefined && !(Number.isInteger(history) && history > 0)) fail(`--watch-history must be a positive integer: got '${values["watch-history"]}'`);

const api = await startKubeApiServer({ port, watchHistory: history }).catch((e) => fail((e as Error).message));
api.writeKubeconfig(values.kubeconfig, { namespace: values.namespace! });
console.log(`kube-apiserver double ready at ${api.url} (kubeconfig ${values.kubeconfig}, namespace ${values.namespace})`);
process.on("SIGUSR1", () => void api.stop());
process.on("SIGUSR2", () => void api.start());
for (const s of ["SIGINT", "SIGTERM"] as const) process.once(s, () => void api.close().then(() => process.exit(0)));
