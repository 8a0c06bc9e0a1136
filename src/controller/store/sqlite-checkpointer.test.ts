import { afterEach, beforeEach, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ExporterStatus } from "../../gen/jumpstarter/v1/common_pb.ts";
import type { ExporterRecord } from "../model.ts";
import { DATABASE_FILE, SqliteStore } from "./sqlite.ts";
import { CHECKPOINT_EVERY, type CheckpointResult, Checkpointer, type CheckpointSource, FORCE_AFTER } from "./sqlite-checkpointer.ts";

let dir: string;
let store: SqliteStore;
let results: { by: CheckpointSource; r: CheckpointResult }[];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "jmp-ckpt-"));
  store = SqliteStore.open(dir);
  results = [];
  store.walCheckpointer!.onResult = (r, by) => results.push({ by, r });
});

afterEach(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

const wal = () => join(dir, `${DATABASE_FILE}-wal`);
const walFrames = () => statSync(wal()).size / 4096;

const exporter = (name: string): ExporterRecord => ({
  namespace: "default", name, uid: `uid-${name}`, labels: { board: "rpi4", note: "x".repeat(500) }, enabled: true,
  disabledReason: "", health: null, tokenId: "t", devices: [], status: ExporterStatus.AVAILABLE, statusMessage: "",
  registered: true, lastSeen: 1, leaseName: null, createdAt: 1,
});

/**
 * `n` commits, each creating an exporter; the event loop turns every `turnEvery` (0: never).
 * With the loop turning, a request due finds the one before it answered: on a loaded
 * machine the worker thread can be late by more than CHECKPOINT_EVERY commits, and the
 * bound on the WAL is about the checkpoints, not about how soon a thread gets a core.
 */
async function commits(n: number, turnEvery: number, from = 0): Promise<void> {
  for (let i = from; i < from + n; i++) {
    if (turnEvery && i > 0 && (i + 1) % CHECKPOINT_EVERY === 0) await answered((i + 1) / CHECKPOINT_EVERY - 1);
    store.transactionSync((w) => w.createExporter(exporter(`e-${i}`)));
    if (turnEvery && i % turnEvery === 0) await new Promise((r) => setImmediate(r));
  }
}

/** Waits (a bounded while) until the worker has answered `count` requests. */
async function answered(count: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (results.filter((x) => x.by === "worker").length < count) {
    if (Date.now() > deadline) throw new Error(`the checkpoint worker did not answer request ${count} in 10 s`);
    await Bun.sleep(1);
  }
}

test("the worker checkpoints beside the commits and the store finishes: the WAL starts over, nothing is lost", async () => {
  await commits(20 * CHECKPOINT_EVERY, 4);
  await Bun.sleep(200);
  const worker = results.filter((x) => x.by === "worker" && !x.r.busy);
  const here = results.filter((x) => x.by === "here" && !x.r.busy);
  expect(worker.length).toBeGreaterThanOrEqual(10);
  // Each finishing pass copies every frame: the next commit starts the WAL over.
  expect(here.length).toBeGreaterThan(0);
  for (const { r } of here) expect(r.checkpointed).toBe(r.log);
  // A checkpoint every CHECKPOINT_EVERY commits: the WAL never held many more frames than that.
  const most = Math.max(...results.map((x) => x.r.log));
  expect(most).toBeLessThan(4 * CHECKPOINT_EVERY * 4);
  expect(store.listExporters("default")).toHaveLength(20 * CHECKPOINT_EVERY);
});

test("with no event loop to hear the worker, the store checkpoints itself: the WAL stays bounded", async () => {
  await commits(3 * FORCE_AFTER, 0);
  const here = results.filter((x) => x.by === "here" && !x.r.busy);
  expect(here.length).toBeGreaterThanOrEqual(2);
  // Bounded by FORCE_AFTER commits' frames (each commit here writes a few pages), not by all 3 × FORCE_AFTER.
  expect(walFrames()).toBeLessThan(FORCE_AFTER * 5);
  expect(store.listExporters("default")).toHaveLength(3 * FORCE_AFTER);
});

test("close() during the worker's checkpoint waits for it; the file reopens with every row and no WAL left", async () => {
  await commits(5 * CHECKPOINT_EVERY, 0);
  // A request is with the worker (asked at the 100th commit, and none of its answers heard).
  store.close();
  expect(existsSync(wal())).toBe(false);
  const db = new Database(join(dir, DATABASE_FILE), { readonly: true });
  try {
    expect((db.query("SELECT COUNT(*) AS n FROM exporters").get() as { n: number }).n).toBe(5 * CHECKPOINT_EVERY);
    expect((db.query("PRAGMA integrity_check").get() as { integrity_check: string }).integrity_check).toBe("ok");
  } finally {
    db.close();
  }
  store = SqliteStore.open(dir);
  expect(store.listExporters("default")).toHaveLength(5 * CHECKPOINT_EVERY);
});

test("a worker that cannot open the file hands checkpoints back to SQLite, once, and says so", async () => {
  let fellBack = 0;
  const checkpointer = new Checkpointer({
    path: join(dir, "not-there", "x.db"),
    checkpointHere: () => ({ busy: 0, log: 0, checkpointed: 0 }),
    fallback: () => fellBack++,
  });
  try {
    for (let i = 0; i < 3 * CHECKPOINT_EVERY; i++) checkpointer.committed();
    const deadline = Date.now() + 5_000;
    while (fellBack === 0 && Date.now() < deadline) await Bun.sleep(10);
    expect(fellBack).toBe(1);
    for (let i = 0; i < 3 * CHECKPOINT_EVERY; i++) checkpointer.committed();
    await Bun.sleep(100);
    expect(fellBack).toBe(1);
  } finally {
    checkpointer.close();
  }
});

test("an in-memory database has no WAL and no checkpointer", () => {
  const memory = new SqliteStore(":memory:");
  try {
    expect(memory.walCheckpointer).toBeNull();
    memory.transactionSync((w) => w.createExporter(exporter("m")));
    expect(memory.listExporters("default")).toHaveLength(1);
  } finally {
    memory.close();
  }
});
