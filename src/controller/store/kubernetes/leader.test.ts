/**
 * Leader election on the API server double, with short timings: one leader at a time,
 * a leader that cannot renew stops leading before another takes over, and a stopping
 * leader hands over at once.
 */
import { afterEach, beforeEach, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type KubeApiServer, startKubeApiServer } from "../../../../test/kube-apiserver/server.ts";
import { until } from "../contract.ts";
import { connect, KubeApi } from "./api.ts";
import { LEADER_LEASE, LeaderElector } from "./leader.ts";

const TIMING = { leaseDurationMs: 1500, renewDeadlineMs: 1000, retryPeriodMs: 100 };
const ALL = "*" as const;

let dir: string;
let api: KubeApiServer;
let electors: LeaderElector[];
/** Every moment two electors said they lead: must stay empty. */
let overlaps: number;
let sampler: ReturnType<typeof setInterval>;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "jmp-leader-"));
  api = await startKubeApiServer({ users: [{ token: "token-a", name: "replica-a", rules: ALL }, { token: "token-b", name: "replica-b", rules: ALL }] });
  electors = ["a", "b"].map((who) => {
    const kubeconfig = join(dir, `kubeconfig-${who}`);
    api.writeKubeconfig(kubeconfig, { namespace: "lab", token: `token-${who}` });
    return new LeaderElector(new KubeApi(connect({ kubeconfig })), `replica-${who}`, () => {}, TIMING);
  });
  overlaps = 0;
  sampler = setInterval(() => {
    if (electors.filter((e) => e.isLeading()).length > 1) overlaps++;
  }, 5);
});

afterEach(async () => {
  clearInterval(sampler);
  for (const e of electors) await e.stop();
  await api.close();
  rmSync(dir, { recursive: true, force: true });
});

const holder = () => (api.objects("leases.coordination.k8s.io", "lab").find((o) => o.metadata.name === LEADER_LEASE)?.spec as { holderIdentity?: string } | undefined)?.holderIdentity;

test("one of two leads; a leader that cannot renew stops leading before the other takes over", async () => {
  const [a, b] = electors as [LeaderElector, LeaderElector];
  a.start();
  await until(() => expect(a.isLeading()).toBe(true));
  b.start();
  await Bun.sleep(2 * TIMING.leaseDurationMs);
  expect([a.isLeading(), b.isLeading()]).toEqual([true, false]);
  expect(holder()).toBe("replica-a");

  // A loses the right to write the Lease: its renewals fail (403) from now on.
  api.setRules("token-a", [{ apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["get"] }]);
  const cut = performance.now();
  await until(() => expect(a.isLeading()).toBe(false), 5000);
  const stepDown = performance.now() - cut;
  await until(() => expect(b.isLeading()).toBe(true), 5000);
  const takeOver = performance.now() - cut;
  expect(holder()).toBe("replica-b");
  expect(stepDown).toBeLessThanOrEqual(TIMING.renewDeadlineMs + 50);
  expect(takeOver).toBeGreaterThan(stepDown);
  expect(overlaps).toBe(0);
}, 20_000);

test("a leader that stops gives the lease up: the other leads within a retry period or two", async () => {
  const [a, b] = electors as [LeaderElector, LeaderElector];
  a.start();
  await until(() => expect(a.isLeading()).toBe(true));
  b.start();
  await Bun.sleep(300);
  const t0 = performance.now();
  await a.stop();
  await until(() => expect(b.isLeading()).toBe(true), 5000);
  expect(performance.now() - t0).toBeLessThan(TIMING.leaseDurationMs);
  expect(overlaps).toBe(0);
});

test("a leader stopped while its renewal is in flight stays stopped, and gives the lease up once that renewal lands", async () => {
  const [a, b] = electors as [LeaderElector, LeaderElector];
  a.start();
  await until(() => expect(a.isLeading()).toBe(true));
  b.start();
  // Each request now takes 80 ms: a's renewal (a GET and a PUT) is in flight most of the time.
  api.setLatency(80);
  await Bun.sleep(250);
  const t0 = performance.now();
  await a.stop();
  expect(a.isLeading()).toBe(false);
  await until(() => expect(b.isLeading()).toBe(true), 5000);
  expect(performance.now() - t0).toBeLessThan(TIMING.leaseDurationMs);
  await Bun.sleep(300);
  expect([a.isLeading(), holder()]).toEqual([false, "replica-b"]);
  expect(overlaps).toBe(0);
});
