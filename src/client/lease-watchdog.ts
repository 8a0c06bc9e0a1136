/**
 * The library's guard against a test process killed outright (SIGKILL, a crash):
 * a small detached process that releases the lease once the process that took it
 * is gone, within about a second instead of at the lease's expiry. It exits
 * quietly when told to (SIGTERM) or when the lease has ended anyway.
 *
 * Started by lease() with {@link startLeaseWatchdog}; runs this file as
 * `bun lease-watchdog.ts PID LEASE [CLIENT_CONFIG]`.
 */
import { spawn } from "node:child_process";
import { processAlive } from "../common/process-alive.ts";

/** Watches `pid` (default: this process) and releases `leaseName` when it dies. */
export function startLeaseWatchdog(leaseName: string, configFile: string, pid = process.pid): { stop(): void } {
  const args = [import.meta.path, String(pid), leaseName];
  // A config from the environment is read again from the same environment.
  if (configFile && !configFile.startsWith("<")) args.push(configFile);
  const child = spawn(process.execPath, args, { detached: true, stdio: "ignore", env: process.env });
  child.unref();
  return {
    stop: () => {
      try {
        child.kill("SIGTERM");
      } catch {
        // Already gone.
      }
    },
  };
}


async function watch(pid: number, leaseName: string, configFile: string | undefined): Promise<never> {
  const [{ openController }, { LeaseApi }] = await Promise.all([import("./controller.ts"), import("./leases.ts")]);
  const api = new LeaseApi(openController({ clientConfig: configFile }));
  let checks = 0;
  for (;;) {
    await Bun.sleep(250);
    if (!processAlive(pid)) {
      // Nobody is left to tell of a failure: the lease then ends at its expiry.
      await api.release(leaseName).catch(() => {});
      process.exit(0);
    }
    // Now and then, stop watching a lease that ended by itself.
    if (++checks % 40 === 0) {
      const v = await api.get(leaseName).catch(() => undefined);
      if (v && v.state !== "Ready" && v.state !== "Pending") process.exit(0);
    }
  }
}

if (import.meta.main) {
  const [pidText, leaseName, configFile] = process.argv.slice(2);
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || !leaseName) {
    console.error("usage: lease-watchdog.ts PID LEASE [CLIENT_CONFIG]");
    process.exit(2);
  }
  await watch(pid, leaseName, configFile);
}
