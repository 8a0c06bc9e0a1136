/**
 * Where the controller keeps what each lease's consoles printed: one file per lease
 * and driver, `<data-dir>/console/<namespace>/<lease>/<driver>.log`, holding the
 * newest bytes only (the exporter's consoleCapture.maxBytes, at most MAX_KEEP_BYTES).
 * A file grows to twice that, then is cut back to its newest half in one rewrite,
 * so an append costs one write. The newest MAX_LEASES lease folders are kept; older
 * ones are deleted as new leases arrive. The files outlive the lease and the
 * controller: `jmp lease logs` reads them after the lease ended. Where the exporter
 * fell behind and dropped output, a line `[jmp: N bytes of console output dropped
 * here]` stands at the spot.
 */
import { appendFileSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, closeSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export const DEFAULT_KEEP_BYTES = 8 * 2 ** 20;
export const MAX_KEEP_BYTES = 64 * 2 ** 20;
export const MAX_LEASES = 500;
const DRIVER_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

export interface ConsoleChunk {
  driver: string;
  data: Uint8Array;
  /** Bytes dropped before `data` (only on the first chunk of a read). */
  skipped: number;
}

type Listener = (event: { driver: string; data?: Uint8Array; done?: boolean }) => void;

interface FileState {
  /** Bytes in the file now. */
  size: number;
  keep: number;
  /** Bytes written and since cut away, in this process's life. */
  dropped: number;
  done: boolean;
}

/** What stands in the kept output where the exporter dropped `bytes` (on a line of its own). */
export function gapMarker(bytes: number): Uint8Array {
  return new TextEncoder().encode(`\r\n[jmp: ${bytes} bytes of console output dropped here]\r\n`);
}

export class ConsoleLogs {
  private readonly root: string;
  private readonly files = new Map<string, FileState>();
  private readonly listeners = new Map<string, Set<Listener>>();

  constructor(dataDir: string) {
    this.root = join(dataDir, "console");
  }

  /** The driver name, checked: it becomes a file name. */
  static checkDriver(driver: string): string | undefined {
    if (!DRIVER_NAME.test(driver) || driver.includes("..")) return `driver name '${driver}' must be letters, digits, '_', '-' and '.' (at most 128)`;
    return undefined;
  }

  private dir(namespace: string, lease: string): string {
    return join(this.root, namespace, lease);
  }

  private file(namespace: string, lease: string, driver: string): string {
    return join(this.dir(namespace, lease), `${driver}.log`);
  }

  append(namespace: string, lease: string, driver: string, data: Uint8Array, keepBytes: number, dropped = 0): void {
    const k = `${namespace}/${lease}/${driver}`;
    const path = this.file(namespace, lease, driver);
    let f = this.files.get(k);
    if (!f) {
      const dir = this.dir(namespace, lease);
      if (!existsSync(dir)) {
        mkdirSync(dir, { recursive: true, mode: 0o700 });
        this.prune(namespace);
      }
      f = { size: existsSync(path) ? statSync(path).size : 0, keep: DEFAULT_KEEP_BYTES, dropped: 0, done: false };
      this.files.set(k, f);
    }
    if (keepBytes > 0) f.keep = Math.min(keepBytes, MAX_KEEP_BYTES);
    // The exporter fell behind: a line at the spot says so and how much is missing.
    if (dropped > 0) data = Buffer.concat([gapMarker(dropped), data]);
    if (data.byteLength > 0) {
      appendFileSync(path, data);
      f.size += data.byteLength;
      if (f.size > 2 * f.keep) {
        const all = readFileSync(path);
        const cut = all.length - f.keep;
        writeFileSync(path, all.subarray(cut));
        f.dropped += cut;
        f.size = f.keep;
      }
      this.tell(namespace, lease, { driver, data });
    }
  }

  done(namespace: string, lease: string, driver: string): void {
    const f = this.files.get(`${namespace}/${lease}/${driver}`);
    if (f) f.done = true;
    this.tell(namespace, lease, { driver, done: true });
  }

  /** Whether every driver that sent output for this lease (in this process's life) has said it is done. */
  allDone(namespace: string, lease: string): boolean {
    const prefix = `${namespace}/${lease}/`;
    for (const [k, f] of this.files) if (k.startsWith(prefix) && !f.done) return false;
    return true;
  }

  /** The drivers with kept output for the lease. */
  drivers(namespace: string, lease: string): string[] {
    const dir = this.dir(namespace, lease);
    if (!existsSync(dir)) return [];
    return readdirSync(dir).filter((n) => n.endsWith(".log")).map((n) => n.slice(0, -4)).sort();
  }

  /** What is kept of one driver's output, in pieces of at most `chunk` bytes. */
  *read(namespace: string, lease: string, driver: string, chunk = 64 * 1024): Generator<ConsoleChunk> {
    const path = this.file(namespace, lease, driver);
    if (!existsSync(path)) return;
    const f = this.files.get(`${namespace}/${lease}/${driver}`);
    const size = f ? Math.min(f.size, f.keep) : statSync(path).size;
    const fd = openSync(path, "r");
    try {
      // A file not yet cut back may hold more than `keep`: read only the newest.
      const total = statSync(path).size;
      let at = total - size;
      let skipped = (f?.dropped ?? 0) + at;
      while (at < total) {
        const buf = Buffer.allocUnsafe(Math.min(chunk, total - at));
        const n = readSync(fd, buf, 0, buf.length, at);
        if (n <= 0) break;
        at += n;
        yield { driver, data: buf.subarray(0, n), skipped };
        skipped = 0;
      }
    } finally {
      closeSync(fd);
    }
  }

  /** Calls `fn` for each append and end of the lease's drivers until the returned function is called. */
  watch(namespace: string, lease: string, fn: Listener): () => void {
    const k = `${namespace}/${lease}`;
    let set = this.listeners.get(k);
    if (!set) this.listeners.set(k, (set = new Set()));
    set.add(fn);
    return () => {
      set.delete(fn);
      if (set.size === 0) this.listeners.delete(k);
    };
  }

  private tell(namespace: string, lease: string, event: Parameters<Listener>[0]): void {
    for (const fn of this.listeners.get(`${namespace}/${lease}`) ?? []) fn(event);
  }

  /** Keeps the namespace's newest MAX_LEASES lease folders. */
  private prune(namespace: string): void {
    const ns = join(this.root, namespace);
    const dirs = readdirSync(ns).map((name) => ({ name, at: statSync(join(ns, name)).mtimeMs })).sort((a, b) => b.at - a.at);
    for (const d of dirs.slice(MAX_LEASES)) rmSync(join(ns, d.name), { recursive: true, force: true });
  }
}
