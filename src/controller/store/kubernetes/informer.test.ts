/**
 * The watch-fed cache on the API server double: it resumes after the server ends a
 * watch, re-lists when its version is too old (410 Gone), and keeps serving reads
 * while the server is down.
 */
import { afterEach, beforeEach, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type KubeApiServer, startKubeApiServer } from "../../../../test/kube-apiserver/server.ts";
import { lease, until } from "../contract.ts";
import { connect, KubeApi } from "./api.ts";
import { KubernetesStore } from "./store.ts";

let dir: string;
let api: KubeApiServer;
let stores: KubernetesStore[];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "jmp-informer-"));
  api = await startKubeApiServer();
  const kubeconfig = join(dir, "kubeconfig");
  api.writeKubeconfig(kubeconfig, { namespace: "lab" });
  stores = [await KubernetesStore.open(new KubeApi(connect({ kubeconfig }))), await KubernetesStore.open(new KubeApi(connect({ kubeconfig })))];
});

afterEach(async () => {
  for (const s of stores) s.close();
  await api.close();
  rmSync(dir, { recursive: true, force: true });
});

const names = (s: KubernetesStore) => s.listLeases("lab").map((l) => l.name);

test("a watch the server ends is resumed from its last version: later changes arrive, none twice", async () => {
  const [writer, reader] = stores as [KubernetesStore, KubernetesStore];
  await writer.transaction((w) => w.createLease(lease("before", { createdAt: 1 })));
  await until(() => expect(names(reader)).toEqual(["before"]));
  // A created lease is two writes (the object, then its status): let the second arrive too.
  await Bun.sleep(500);
  const changes: string[] = [];
  reader.onChange((c) => changes.push(`${c.type} ${c.name}`));
  api.endWatches();
  await writer.transaction((w) => w.createLease(lease("after", { createdAt: 2 })));
  await until(() => expect(names(reader)).toEqual(["before", "after"]));
  expect(changes.filter((c) => c.endsWith(" before"))).toEqual([]);
  expect(api.stats().expired).toBe(0);
});

test("a version too old (410 Gone) after the server was down: the cache lists again and misses nothing; reads go on meanwhile", async () => {
  const [writer, reader] = stores as [KubernetesStore, KubernetesStore];
  await writer.transaction((w) => w.createLease(lease("l0", { createdAt: 1 })));
  await until(() => expect(names(reader)).toEqual(["l0"]));
  api.setWatchHistory(1);
  // The reader's watch backs off while the server is down, so the writes made at once
  // when it is back push its version out of the one-change history: it gets 410 and lists.
  let n = 1;
  for (let round = 0; round < 3 && api.stats().expired === 0; round++) {
    await api.stop();
    await Bun.sleep(2500);
    expect(names(reader)).toContain("l0"); // the cache serves while the server is down
    await api.start();
    for (let i = 0; i < 4; i++, n++) await writer.transaction((w) => w.createLease(lease(`l${n}`, { createdAt: 1 + n })));
    await until(() => expect(names(reader)).toHaveLength(n), 15_000);
  }
  expect(api.stats().expired).toBeGreaterThan(0);
  expect(names(reader)).toEqual(Array.from({ length: n }, (_, i) => `l${i}`));
}, 60_000);
