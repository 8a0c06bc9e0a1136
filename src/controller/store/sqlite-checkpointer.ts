/**
 * WAL checkpoints, mostly off the controller's event loop. SQLite's automatic
 * checkpoint runs inside the commit that finds the WAL past 1000 pages and ends with
 * an fsync of the WAL and of the database: 5–11 ms here, every couple of hundred
 * commits, during which every call waits. That was the tail of create→Ready (a lease
 * is four commits). So the store's own connection does not checkpoint in its commits.
 *
 * After every CHECKPOINT_EVERY commits a worker thread copies the WAL into the
 * database on a connection of its own (PASSIVE: it blocks neither writer nor reader).
 * Such a pass copies the frames there were when it began, and SQLite starts the WAL
 * over only after a pass that left none behind: with commits landing while it ran, the
 * worker's never does. It takes a few passes, each copying what was written during
 * the one before, until few frames came in; when it answers, the store's connection
 * copies the rest itself. Between our transactions it is the only writer, so its pass is
 * complete; it copies only what was written during the worker's last pass (1.4 ms
 * median here with its fsyncs, against SQLite's 5–11 ms). Should no answer come (no
 * event loop to hear it), the store's connection checkpoints after FORCE_AFTER
 * commits: the WAL stays bounded whatever happens.
 *
 * The worker opens the file for each request and closes it after, so between
 * checkpoints it holds nothing, and close() need only wait for one in progress.
 */
import { getLogger } from "../../common/log.ts";

/** Commits between checkpoints: a few hundred pages of WAL (SQLite's own default is 1000 pages). */
export const CHECKPOINT_EVERY = 100;

/** Commits without an answer after which the store's connection checkpoints itself. */
export const FORCE_AFTER = 10 * CHECKPOINT_EVERY;

/** Passes one request may take to catch up with the commits made while it ran, */
const PASSES = 4;
/** ... until the frames written during a pass are this few (a commit is a few frames). */
const SMALL_REST = 32;

/** How long close() waits for a checkpoint in progress (an fsync on a slow disk). */
const CLOSE_WAIT_MS = 5_000;

// The worker's state, shared: idle → busy (the worker, only from idle) → idle; idle → closed (close()).
const IDLE = 0;
const BUSY = 1;
const CLOSED = 2;

/**
 * The worker's code. A blob, not a file: the compiled executable has no file to point
 * a Worker at, and this is all it needs. It answers each request with the checkpoint's
 * result or the error's message.
 */
const WORKER_SOURCE = `
import { Database } from "bun:sqlite";
let state;
self.onmessage = ({ data }) => {
  if (data.state) { state = new Int32Array(data.state); return; }
  if (Atomics.compareExchange(state, 0, ${IDLE}, ${BUSY}) !== ${IDLE}) return;
  let db;
  try {
    db = new Database(data.path, { readwrite: true, create: false });
    const pass = db.query("PRAGMA wal_checkpoint(PASSIVE)");
    let r = pass.get();
    // Again while the last pass found many frames written during the one before it:
    // what the store's connection is left to copy, on its event loop, stays small.
    for (let i = 1, before = r.log; i < ${PASSES} && !r.busy && r.log >= 0; i++) {
      r = pass.get();
      if (r.busy || r.log - before <= ${SMALL_REST}) break;
      before = r.log;
    }
    postMessage({ ok: true, busy: r.busy, log: r.log, checkpointed: r.checkpointed });
  } catch (e) {
    postMessage({ ok: false, message: String(e && e.message || e) });
  } finally {
    try { db?.close(); } catch {}
    Atomics.store(state, 0, ${IDLE});
    Atomics.notify(state, 0);
  }
};
`;

const log = getLogger("controller");

export interface CheckpointResult {
  /** Another checkpoint was running: nothing was done. */
  busy: number;
  /** Frames in the WAL, and how many of them are in the database now. */
  log: number;
  checkpointed: number;
}

/** What the store gives the checkpointer: its file, its own connection's checkpoint, a way back to SQLite's. */
export interface CheckpointTarget {
  readonly path: string;
  /** A PASSIVE checkpoint on the store's connection, now. */
  checkpointHere(): CheckpointResult;
  /** Turns SQLite's checkpoints in the commits back on (the worker cannot run). */
  fallback(): void;
}

export type CheckpointSource = "worker" | "here";

export class Checkpointer {
  private worker: Worker | null = null;
  private readonly state = new Int32Array(new SharedArrayBuffer(4));
  /** Commits since the last request, and since the last checkpoint of any kind. */
  private sinceRequest = 0;
  private sinceCheckpoint = 0;
  /** A request is with the worker: none is sent beside it. */
  private asked = false;
  private failed = false;
  /** Every result, with who checkpointed (for tests). */
  onResult: ((r: CheckpointResult, by: CheckpointSource) => void) | null = null;

  constructor(private readonly target: CheckpointTarget) {}

  /** After each commit of the store's connection. */
  committed(): void {
    if (this.failed) return;
    if (++this.sinceCheckpoint >= FORCE_AFTER) this.checkpointHere();
    if (++this.sinceRequest < CHECKPOINT_EVERY || this.asked) return;
    this.request();
  }

  /**
   * Waits (a bounded while) for a checkpoint in progress, then ends the worker: the
   * store's connection, closed after this, is then the file's last and checkpoints the rest.
   */
  close(): void {
    const deadline = performance.now() + CLOSE_WAIT_MS;
    while (Atomics.compareExchange(this.state, 0, IDLE, CLOSED) === BUSY) {
      const left = deadline - performance.now();
      if (left <= 0) break;
      Atomics.wait(this.state, 0, BUSY, left);
    }
    Atomics.store(this.state, 0, CLOSED);
    this.worker?.terminate();
    this.worker = null;
  }

  private request(): void {
    if (Atomics.load(this.state, 0) === CLOSED) return;
    try {
      this.ensureWorker().postMessage({ path: this.target.path });
    } catch (e) {
      return this.fail(`could not start the checkpoint thread: ${(e as Error).message}`);
    }
    this.asked = true;
    this.sinceRequest = 0;
  }

  /** The worker's answer: the store's connection copies what was committed while it ran. */
  private answered(r: CheckpointResult): void {
    this.asked = false;
    this.onResult?.(r, "worker");
    if (Atomics.load(this.state, 0) === CLOSED) return;
    if (this.sinceRequest > 0 || r.busy || r.checkpointed < r.log) this.checkpointHere();
    else this.sinceCheckpoint = 0;
  }

  private checkpointHere(): void {
    let r: CheckpointResult;
    try {
      r = this.target.checkpointHere();
    } catch (e) {
      // The commits go on; the next one, or SQLite's own checkpoint, tries again.
      return this.fail(`a WAL checkpoint failed: ${(e as Error).message}`);
    }
    // Busy: the worker has the checkpoint; its answer brings us back here.
    if (!r.busy) this.sinceCheckpoint = 0;
    this.onResult?.(r, "here");
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    // Not revoked: the worker loads it after this returns.
    const url = URL.createObjectURL(new Blob([WORKER_SOURCE], { type: "application/javascript" }));
    const worker = new Worker(url);
    // A controller that is done must not be kept alive by its checkpointer.
    worker.unref();
    worker.onmessage = ({ data }: MessageEvent) => {
      if (!data.ok) return this.fail(`a WAL checkpoint in the background failed: ${data.message}`);
      this.answered({ busy: data.busy, log: data.log, checkpointed: data.checkpointed });
    };
    worker.onerror = (e) => this.fail(`the checkpoint thread failed: ${e.message}`);
    worker.postMessage({ state: this.state.buffer });
    this.worker = worker;
    return worker;
  }

  private fail(why: string): void {
    if (this.failed) return;
    this.failed = true;
    log.warn(`${why}; ${this.target.path} is checkpointed in its commits from now on`);
    this.target.fallback();
    this.worker?.terminate();
    this.worker = null;
  }
}
