/** The audit log's ConfigMap chunks on the API server double: rollover, pruning, two replicas, an API server away. */
import { afterEach, beforeEach, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type KubeApiServer, startKubeApiServer } from "../../../../test/kube-apiserver/server.ts";
import type { NewAuditEntry } from "../../audit.ts";
import { connect, KubeApi } from "./api.ts";
import { KubeAuditLog } from "./audit-log.ts";

let dir = "";
let server: KubeApiServer;
let kubeconfig = "";

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "jmp-kube-audit-"));
  server = await startKubeApiServer();
  kubeconfig = join(dir, "kubeconfig");
  server.writeKubeconfig(kubeconfig, { namespace: "lab" });
});

afterEach(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

const entry = (i: number, at = Date.now()): NewAuditEntry => ({
  at, namespace: "lab", action: "lease.create", actor: `client/c${i}`, lease: `l${i}`, client: `c${i}`, reason: "", detail: `entry ${i}`,
});

const chunks = () => server.objects("configmaps", "lab").map((c) => c.metadata.name as string).sort();

test("full chunks roll over to the next; the oldest whole chunks go once beyond the count, the newest entries stay", async () => {
  const log = new KubeAuditLog(new KubeApi(connect({ kubeconfig })), { maxAgeMs: 3_600_000, maxEntries: 40 }, Date.now, { chunkBytes: 1024 });
  for (let i = 0; i < 200; i++) {
    log.append([entry(i)]);
    if (i % 7 === 0) await log.flush();
  }
  await log.flush();
  const names = chunks();
  expect(names.length).toBeGreaterThan(1);
  expect(names[0]).not.toBe("jmp-audit-0000000001");
  const kept = await log.list({ namespace: "lab" });
  // Whole chunks go: at least the newest 40 are kept, and no more than 40 plus one chunk's worth (~9 a KiB).
  expect(kept.length).toBeGreaterThanOrEqual(40);
  expect(kept.length).toBeLessThan(60);
  expect(kept.at(-1)!.detail).toBe("entry 199");
  const numbers = kept.map((e) => Number(e.lease!.slice(1)));
  expect(numbers).toEqual(numbers.map((_, i) => numbers[0]! + i));
});

test("chunks past their age go, the newest chunk stays whatever its age", async () => {
  let now = Date.now();
  const log = new KubeAuditLog(new KubeApi(connect({ kubeconfig })), { maxAgeMs: 60_000, maxEntries: 1000 }, () => now, { chunkBytes: 512 });
  for (let i = 0; i < 10; i++) log.append([entry(i, now - 120_000)]);
  await log.flush();
  now += 1;
  for (let i = 10; i < 30; i++) {
    log.append([entry(i, now)]);
    await log.flush();
  }
  const kept = await log.list({ namespace: "lab" });
  expect(kept.some((e) => e.at < now - 60_000)).toBe(false);
  expect(kept.at(-1)!.detail).toBe("entry 29");
});

test("two replicas appending at once lose nothing and write nothing twice", async () => {
  const a = new KubeAuditLog(new KubeApi(connect({ kubeconfig })), { maxAgeMs: 3_600_000, maxEntries: 10_000 }, Date.now, { chunkBytes: 2048 });
  const b = new KubeAuditLog(new KubeApi(connect({ kubeconfig })), { maxAgeMs: 3_600_000, maxEntries: 10_000 }, Date.now, { chunkBytes: 2048 });
  for (let i = 0; i < 150; i++) (i % 2 ? a : b).append([entry(i)]);
  await Promise.all([a.flush(), b.flush()]);
  const details = (await a.list({ namespace: "lab" })).map((e) => e.detail);
  expect(details.length).toBe(150);
  expect(new Set(details).size).toBe(150);
});

test("entries made while the API server is away are written once it is back", async () => {
  const log = new KubeAuditLog(new KubeApi(connect({ kubeconfig })), { maxAgeMs: 3_600_000, maxEntries: 1000 });
  log.append([entry(0)]);
  await log.flush();
  await server.stop();
  log.append([entry(1), entry(2)]);
  await Bun.sleep(600); // Two failed tries at least (250 ms, then 500 ms backoff).
  await server.start();
  await log.flush();
  expect((await log.list({ namespace: "lab" })).map((e) => e.detail)).toEqual(["entry 0", "entry 1", "entry 2"]);
});

test("a long log is pruned without reading it all again: one list at the first write, whatever the number of chunks; two replicas keep the count", async () => {
  const apis = [new KubeApi(connect({ kubeconfig })), new KubeApi(connect({ kubeconfig }))];
  let lists = 0;
  for (const api of apis) {
    const list = api.listConfigMaps.bind(api);
    api.listConfigMaps = (selector: string) => (lists++, list(selector));
  }
  // Written as appended (no gathering), so that the two replicas' entries land in chunks in the order of i.
  const [a, b] = apis.map((api) => new KubeAuditLog(api, { maxAgeMs: 3_600_000, maxEntries: 100 }, Date.now, { chunkBytes: 1024, batchMs: 0 }));
  for (let i = 0; i < 600; i++) {
    (i % 2 ? a! : b!).append([entry(i)]);
    if (i % 5 === 0) await Promise.all([a!.flush(), b!.flush()]);
  }
  await Promise.all([a!.flush(), b!.flush()]);
  // ~9 entries a chunk: some 65 chunks were started, and each replica listed the log once.
  expect(lists).toBe(2);
  const kept = await a!.list({ namespace: "lab" });
  expect(kept.length).toBeGreaterThanOrEqual(100);
  expect(kept.length).toBeLessThan(100 + 3 * 10);
  expect(new Set(kept.map((e) => e.detail)).size).toBe(kept.length);
  const newest = Math.max(...kept.map((e) => Number(e.lease!.slice(1))));
  expect(newest).toBe(599);
  // Whole chunks went, the oldest first: what is kept is the newest, with no entry missing between.
  const numbers = kept.map((e) => Number(e.lease!.slice(1))).sort((x, y) => x - y);
  expect(numbers).toEqual(numbers.map((_, i) => numbers[0]! + i));
});

test("appends gather for a moment and go out as one write; a query or a flush writes at once, and sees them", async () => {
  const api = new KubeApi(connect({ kubeconfig }));
  const writes: number[] = [];
  for (const m of ["replaceConfigMap", "createConfigMap"] as const) {
    const f = api[m].bind(api);
    api[m] = ((c: never) => (writes.push(performance.now()), f(c))) as never;
  }
  const log = new KubeAuditLog(api, { maxAgeMs: 3_600_000, maxEntries: 1000 }, Date.now, { batchMs: 300 });
  // A lease's three entries, each from its own transaction: one write, once the moment has passed.
  const t0 = performance.now();
  for (let i = 0; i < 3; i++) log.append([entry(i)]);
  await Bun.sleep(150);
  expect(writes).toEqual([]);
  await log.flush();
  expect(writes.length).toBe(1);
  expect(writes[0]! - t0).toBeLessThan(300);
  // Without a flush: written after the moment, together.
  for (let i = 3; i < 6; i++) log.append([entry(i)]);
  await Bun.sleep(600);
  expect(writes.length).toBe(2);
  // A query answers with this replica's entries still gathering: it writes them first.
  log.append([entry(6)]);
  const t1 = performance.now();
  const listed = await log.list({ namespace: "lab" });
  expect(performance.now() - t1).toBeLessThan(300);
  expect(listed.map((e) => e.detail)).toEqual([0, 1, 2, 3, 4, 5, 6].map((i) => `entry ${i}`));
  expect(writes.length).toBe(3);
});

test("a query is not held by an API server that takes no writes: it reads, and says why it cannot", async () => {
  const log = new KubeAuditLog(new KubeApi(connect({ kubeconfig })), { maxAgeMs: 3_600_000, maxEntries: 1000 }, Date.now, { batchMs: 50 });
  log.append([entry(0)]);
  await log.flush();
  await server.stop();
  log.append([entry(1)]);
  const t = performance.now();
  await expect(log.list({ namespace: "lab" })).rejects.toThrow();
  // The pending write is retried in the background; the query gave up on it after LIST_FLUSH_MS.
  expect(performance.now() - t).toBeLessThan(5_000);
  log.close();
});
