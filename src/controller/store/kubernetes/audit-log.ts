/**
 * The audit log on Kubernetes: ConfigMaps named `jmp-audit-NNNNNNNNNN`, labelled
 * `jmp.jumpstarter.dev/audit`, each holding up to CHUNK_BYTES of entries as JSON lines.
 * Every replica appends to the newest chunk with its resourceVersion as precondition
 * (a 409 re-reads it and tries again) and starts the next one when it is full (a 409
 * AlreadyExists means another replica started it first). Whole chunks are pruned, the
 * oldest first, once they are past the retention's age or beyond its count.
 *
 * Appends are queued and written in the background, batched: a transaction's commit
 * does not wait for them, and an API server that is away delays them (they are retried)
 * but loses none while this process lives; beyond MAX_PENDING waiting, the oldest are
 * dropped with a warning rather than letting memory grow.
 *
 * Each append rewrites its whole chunk, so what it costs the controller, the API server
 * and etcd is the chunk's size, not the entries'. Written as each lease's entries came
 * (three a lease) into 256 KiB chunks, a controller churning 30 leases a second sent
 * ~5 MB/s of ConfigMap, and serialising it was a quarter of its CPU. So appends gather
 * for BATCH_MS first, and chunks are smaller; a query or a shutdown writes at once.
 */
import type * as k8s from "@kubernetes/client-node";
import { getLogger } from "../../../common/log.ts";
import { type AuditEntry, auditMatches, type AuditQuery, type AuditRetention, type NewAuditEntry } from "../../audit.ts";
import { isKubeError, type KubeApi } from "./api.ts";

const log = getLogger("controller");

export const AUDIT_LABEL = "jmp.jumpstarter.dev/audit";
const PREFIX = "jmp-audit-";
/** Each append rewrites the chunk: small enough for that to be cheap, large enough that 100 000 entries are a few hundred ConfigMaps. */
const CHUNK_BYTES = 64 * 1024;
/** How long appends wait for more to come before they are written: at most this many writes a second, ten. */
const BATCH_MS = 100;
/** How long a query waits for this replica's own pending entries to be written before it reads the log. */
const LIST_FLUSH_MS = 2_000;
/** Sequence numbers: a chunk's number times this, plus the line's index in the chunk. */
const PER_CHUNK = 1_000_000;
const MAX_PENDING = 10_000;
const MAX_BACKOFF_MS = 10_000;
const WARN_EVERY_MS = 60_000;

const chunkName = (n: number) => `${PREFIX}${String(n).padStart(10, "0")}`;
const chunkNumber = (name: string) => Number(name.slice(PREFIX.length));

interface Chunk {
  n: number;
  resourceVersion: string;
  text: string;
}

/** What the prune needs of a chunk older than the newest. */
interface ChunkSize {
  entries: number;
  newestAt: number;
}

export class KubeAuditLog {
  private pending: string[] = [];
  private head: Chunk | undefined;
  private writing: Promise<void> | null = null;
  private closed = false;
  private dropped = 0;
  private lastWarned = -Infinity;
  /**
   * The chunks older than the newest, as last read: the prune counts with these
   * instead of listing the log. Listing it meant reading every chunk (~22 MiB at
   * 100 000 entries; 0.8 s against the API server double) at each new chunk, every
   * ~1 000 entries, so a long-running controller spent more on that than on its leases.
   */
  private sizes = new Map<number, ChunkSize>();

  private readonly chunkBytes: number;
  private readonly batchMs: number;
  /** Ends the gathering wait early (a flush); null while none runs. */
  private wake: (() => void) | null = null;
  /** Flushes waiting: writes go out without gathering. */
  private urgent = 0;

  constructor(
    private readonly api: KubeApi,
    private readonly retention: AuditRetention,
    private readonly now: () => number = Date.now,
    opts: { chunkBytes?: number; batchMs?: number } = {},
  ) {
    this.chunkBytes = opts.chunkBytes ?? CHUNK_BYTES;
    this.batchMs = opts.batchMs ?? BATCH_MS;
  }

  /** Queues the entries; they are written in the background. */
  append(entries: readonly NewAuditEntry[]): void {
    if (this.closed || entries.length === 0) return;
    for (const e of entries) this.pending.push(JSON.stringify(e));
    if (this.pending.length > MAX_PENDING) {
      const over = this.pending.length - MAX_PENDING;
      this.pending.splice(0, over);
      this.dropped += over;
    }
    this.writing ??= this.drain().finally(() => {
      this.writing = null;
    });
  }

  /** Writes what is queued now, without gathering; resolves once every entry queued so far is written (or the log is closed). */
  async flush(): Promise<void> {
    this.urgent++;
    this.wake?.();
    try {
      while (this.writing) await this.writing;
    } finally {
      this.urgent--;
    }
  }

  /**
   * Waits up to batchMs for more entries to write with those queued; undefined (no
   * wait, not even a turn of the event loop) without batching or while a flush waits.
   */
  private gather(): Promise<void> | undefined {
    if (this.batchMs <= 0 || this.urgent > 0) return undefined;
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wake = null;
        resolve();
      };
      const timer = setTimeout(done, this.batchMs);
      this.wake = done;
    });
  }

  close(): void {
    this.closed = true;
  }

  async list(q: AuditQuery): Promise<AuditEntry[]> {
    // This replica's own entries first, so that what it just did is in the answer; an
    // API server that takes no writes must not hold the query (its read then says why).
    await Promise.race([this.flush(), Bun.sleep(LIST_FLUSH_MS)]);
    const chunks = await this.chunks();
    const out: AuditEntry[] = [];
    for (const c of chunks) {
      c.text.split("\n").forEach((line, i) => {
        if (!line) return;
        let parsed: NewAuditEntry;
        try {
          parsed = JSON.parse(line) as NewAuditEntry;
        } catch {
          return; // A line someone edited by hand: skipped rather than failing the whole log.
        }
        const entry: AuditEntry = { ...parsed, seq: c.n * PER_CHUNK + i };
        if (auditMatches(entry, q)) out.push(entry);
      });
    }
    // Replicas append as their writes land, not in the order their transactions
    // committed: the time each entry was made orders them (ties: where they stand).
    out.sort((a, b) => a.at - b.at || a.seq - b.seq);
    return q.limit !== undefined ? out.slice(Math.max(0, out.length - q.limit)) : out;
  }

  private async drain(): Promise<void> {
    let backoff = 250;
    const first = this.gather();
    if (first) await first;
    while (this.pending.length > 0 && !this.closed) {
      if (this.dropped > 0) {
        log.warn(`audit log: ${this.dropped} entries dropped while the Kubernetes API server could not take them`);
        this.dropped = 0;
      }
      const batch = this.pending.slice();
      try {
        await this.write(batch);
        this.pending.splice(0, batch.length);
        backoff = 250;
        const more = this.pending.length > 0 ? this.gather() : undefined;
        if (more) await more;
      } catch (e) {
        if (isKubeError(e, 409)) continue; // Another replica wrote first: write() read its chunk again; try at once.
        this.head = undefined;
        // One line a minute while the API server is away, as the store's other retries.
        if (Date.now() - this.lastWarned >= WARN_EVERY_MS) {
          this.lastWarned = Date.now();
          log.warn(`audit log: could not write ${batch.length} entries (${(e as Error).message}); retrying`);
        }
        await Bun.sleep(backoff);
        backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
      }
    }
  }

  /**
   * Appends the lines to the newest chunk, or starts the next one when they do not fit.
   * The whole log is read at the first write and after an error; a conflict with
   * another replica (409) reads again only the chunk it was about.
   */
  private async write(lines: string[]): Promise<void> {
    this.head ??= await this.newest();
    const text = `${lines.join("\n")}\n`;
    const head = this.head;
    if (head && head.text.length + text.length <= this.chunkBytes) {
      try {
        const written = await this.api.replaceConfigMap({
          apiVersion: "v1", kind: "ConfigMap",
          metadata: { name: chunkName(head.n), resourceVersion: head.resourceVersion, labels: labels() },
          data: { entries: head.text + text },
        });
        this.head = { n: head.n, resourceVersion: written.metadata!.resourceVersion!, text: head.text + text };
      } catch (e) {
        // Another replica appended first.
        if (isKubeError(e, 409)) this.head = await this.chunk(head.n);
        throw e;
      }
      return;
    }
    const n = head ? head.n + 1 : 1;
    if (head) this.sizes.set(head.n, sizeOf(head));
    try {
      const created = await this.api.createConfigMap({
        apiVersion: "v1", kind: "ConfigMap", metadata: { name: chunkName(n), labels: labels() }, data: { entries: text },
      });
      this.head = { n, resourceVersion: created.metadata!.resourceVersion!, text };
    } catch (e) {
      // Another replica started it first: it is the newest now.
      if (isKubeError(e, 409)) this.head = await this.chunk(n);
      throw e;
    }
    await this.prune().catch((e) => log.warn(`audit log: pruning old entries failed (${(e as Error).message}); trying again at the next chunk`));
  }

  private async newest(): Promise<Chunk | undefined> {
    const all = await this.chunks();
    return all.at(-1);
  }

  /** The whole log; what it says of the older chunks replaces what was known of them. */
  private async chunks(): Promise<Chunk[]> {
    const list = await this.api.listConfigMaps(AUDIT_LABEL);
    const all = list.items
      .filter((c: k8s.V1ConfigMap) => c.metadata?.name?.startsWith(PREFIX))
      .map(toChunk)
      .filter((c) => Number.isInteger(c.n))
      .sort((a, b) => a.n - b.n);
    this.sizes = new Map(all.slice(0, -1).map((c) => [c.n, sizeOf(c)]));
    return all;
  }

  /** One chunk; undefined when there is none of that number (the next write then reads the whole log). */
  private async chunk(n: number): Promise<Chunk | undefined> {
    try {
      return toChunk(await this.api.getConfigMap(chunkName(n)));
    } catch (e) {
      if (isKubeError(e, 404)) return undefined;
      throw e;
    }
  }

  /**
   * Deletes whole chunks from the oldest: past the age, or not needed to keep the newest
   * maxEntries. Counts with what is known of them; a chunk another replica started and
   * this one never saw is read once. Entries another replica added to a chunk after this
   * one last read it are not counted, so the count errs towards keeping more.
   */
  private async prune(): Promise<void> {
    const head = this.head!;
    const known = [...this.sizes.keys()];
    for (let n = known.length ? Math.min(...known) : head.n; n < head.n; n++) {
      if (this.sizes.has(n)) continue;
      const c = await this.chunk(n);
      if (c) this.sizes.set(n, sizeOf(c));
    }
    // Oldest first. A query's list() may replace this.sizes meanwhile: the prune keeps this view.
    const older = [...this.sizes].filter(([n]) => n < head.n).sort((x, y) => x[0] - y[0]);
    let total = older.reduce((sum, [, size]) => sum + size.entries, sizeOf(head).entries);
    const cutoff = this.now() - this.retention.maxAgeMs;
    for (const [n, size] of older) {
      if (total - size.entries < this.retention.maxEntries && size.newestAt >= cutoff) break;
      try {
        await this.api.deleteConfigMap(chunkName(n));
      } catch (e) {
        if (!isKubeError(e, 404)) throw e; // Another replica pruned it.
      }
      this.sizes.delete(n);
      total -= size.entries;
    }
  }
}


function toChunk(c: k8s.V1ConfigMap): Chunk {
  return { n: chunkNumber(c.metadata!.name!), resourceVersion: c.metadata!.resourceVersion ?? "", text: c.data?.entries ?? "" };
}

function sizeOf(c: Chunk): ChunkSize {
  return { entries: c.text.split("\n").filter(Boolean).length, newestAt: newestAt(c) };
}

function labels(): Record<string, string> {
  return { "app.kubernetes.io/part-of": "jumpstarter", [AUDIT_LABEL]: "true" };
}

function newestAt(c: Chunk): number {
  const last = c.text.trimEnd().split("\n").at(-1);
  try {
    return last ? (JSON.parse(last) as NewAuditEntry).at : 0;
  } catch {
    return 0;
  }
}
