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
 */
import type * as k8s from "@kubernetes/client-node";
import { getLogger } from "../../../common/log.ts";
import { type AuditEntry, auditMatches, type AuditQuery, type AuditRetention, type NewAuditEntry } from "../../audit.ts";
import { type KubeApi, KubeError } from "./api.ts";

const log = getLogger("controller");

export const AUDIT_LABEL = "jmp.jumpstarter.dev/audit";
const PREFIX = "jmp-audit-";
/** Well under a ConfigMap's 1 MiB: each append rewrites the chunk. */
const CHUNK_BYTES = 256 * 1024;
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

export class KubeAuditLog {
  private pending: string[] = [];
  private head: Chunk | undefined;
  private writing: Promise<void> | null = null;
  private closed = false;
  private dropped = 0;
  private lastWarned = -Infinity;

  private readonly chunkBytes: number;

  constructor(
    private readonly api: KubeApi,
    private readonly retention: AuditRetention,
    private readonly now: () => number = Date.now,
    opts: { chunkBytes?: number } = {},
  ) {
    this.chunkBytes = opts.chunkBytes ?? CHUNK_BYTES;
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

  /** Resolves once every entry queued so far is written (or the log is closed). */
  async flush(): Promise<void> {
    while (this.writing) await this.writing;
  }

  close(): void {
    this.closed = true;
  }

  async list(q: AuditQuery): Promise<AuditEntry[]> {
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
      } catch (e) {
        this.head = undefined;
        if (e instanceof KubeError && e.code === 409) continue; // Another replica wrote first: read again, at once.
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

  /** Appends the lines to the newest chunk, or starts the next one when they do not fit. */
  private async write(lines: string[]): Promise<void> {
    this.head ??= await this.newest();
    const text = `${lines.join("\n")}\n`;
    const head = this.head;
    if (head && head.text.length + text.length <= this.chunkBytes) {
      const written = await this.api.replaceConfigMap({
        apiVersion: "v1", kind: "ConfigMap",
        metadata: { name: chunkName(head.n), resourceVersion: head.resourceVersion, labels: labels() },
        data: { entries: head.text + text },
      });
      this.head = { n: head.n, resourceVersion: written.metadata!.resourceVersion!, text: head.text + text };
      return;
    }
    const n = head ? head.n + 1 : 1;
    const created = await this.api.createConfigMap({
      apiVersion: "v1", kind: "ConfigMap", metadata: { name: chunkName(n), labels: labels() }, data: { entries: text },
    });
    this.head = { n, resourceVersion: created.metadata!.resourceVersion!, text };
    await this.prune().catch((e) => log.warn(`audit log: pruning old entries failed (${(e as Error).message}); trying again at the next chunk`));
  }

  private async newest(): Promise<Chunk | undefined> {
    const all = await this.chunks();
    return all.at(-1);
  }

  private async chunks(): Promise<Chunk[]> {
    const list = await this.api.listConfigMaps(AUDIT_LABEL);
    return list.items
      .filter((c: k8s.V1ConfigMap) => c.metadata?.name?.startsWith(PREFIX))
      .map((c: k8s.V1ConfigMap) => ({ n: chunkNumber(c.metadata!.name!), resourceVersion: c.metadata!.resourceVersion ?? "", text: c.data?.entries ?? "" }))
      .filter((c) => Number.isInteger(c.n))
      .sort((a, b) => a.n - b.n);
  }

  /** Deletes whole chunks from the oldest: past the age, or not needed to keep the newest maxEntries. */
  private async prune(): Promise<void> {
    const all = await this.chunks();
    const counts = all.map((c) => c.text.split("\n").filter(Boolean).length);
    let total = counts.reduce((a, b) => a + b, 0);
    const cutoff = this.now() - this.retention.maxAgeMs;
    for (let i = 0; i < all.length - 1; i++) {
      const tooMany = total - counts[i]! >= this.retention.maxEntries;
      if (!tooMany && newestAt(all[i]!) >= cutoff) break;
      try {
        await this.api.deleteConfigMap(chunkName(all[i]!.n));
      } catch (e) {
        if (!(e instanceof KubeError && e.code === 404)) throw e; // Another replica pruned it.
      }
      total -= counts[i]!;
    }
  }
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
