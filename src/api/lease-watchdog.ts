/**
 * Run by lease() as a detached process: `bun lease-watchdog.ts PID LEASE [CLIENT_CONFIG]`.
 * Releases LEASE when process PID is gone, then exits; exits quietly when told to
 * (SIGTERM) or when the lease has ended anyway.
 */
import { resolveClientConfig } from "../common/client-config.ts";
import { connectController } from "../client/controller-client.ts";
import { LeaseApi } from "../client/leases.ts";

const [pidText, leaseName, configFile] = process.argv.slice(2);
const pid = Number(pidText);
if (!Number.isInteger(pid) || !leaseName) {
  console.error("usage: lease-watchdog.ts PID LEASE [CLIENT_CONFIG]");
  process.exit(2);
}

function alive(p: number): boolean {
  try {
    process.kill(p, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

const config = resolveClientConfig({ clientConfig: configFile }, process.env);
const api = new LeaseApi(connectController({
  endpoint: config.endpoint!, token: config.token!, namespace: config.metadata.namespace ?? "default",
  name: config.metadata.name ?? "", tls: config.tls,
}));

let checks = 0;
for (;;) {
  await Bun.sleep(250);
  if (!alive(pid)) {
    await api.release(leaseName).catch(() => {});
    process.exit(0);
  }
  // Now and then, stop watching a lease that ended by itself.
  if (++checks % 40 === 0) {
    const v = await api.get(leaseName).catch(() => undefined);
    if (v && v.state !== "Ready" && v.state !== "Pending") process.exit(0);
  }
}
