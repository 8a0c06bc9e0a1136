/**
 * One kind's objects in the store's namespace, kept current by list then watch (API
 * Concepts, "Efficient detection of changes"): the watch resumes from the last
 * resourceVersion it saw (bookmarks included); a 410 Gone means that version is too
 * old, so it lists again. While the API server is unreachable it retries with backoff
 * and the cache keeps serving what it last saw.
 */
import { getLogger } from "../../../common/log.ts";
import { type KubeApi, type KubeError, type KubeObject, type Plural } from "./api.ts";

const log = getLogger("controller");

/** Backoff between watch attempts: doubles from 250 ms up to 10 s. */
const MIN_BACKOFF_MS = 250;
const MAX_BACKOFF_MS = 10_000;
/** At most one "unreachable" log line a minute per kind. */
const LOG_EVERY_MS = 60_000;

export type ChangeType = "put" | "delete";

export class Informer {
  readonly objects = new Map<string, KubeObject>();
  private resourceVersion = "";
  private abort: AbortController | undefined;
  private stopped = false;
  private backoff = MIN_BACKOFF_MS;
  private lastLog = 0;
  private retry: ReturnType<typeof setTimeout> | undefined;

  /** `onChange` hears every object the watch (or the store's own writes) brought. */
  constructor(
    private readonly api: KubeApi,
    readonly plural: Plural,
    private readonly onChange: (type: ChangeType, obj: KubeObject) => void,
  ) {}

  /** Lists, then watches in the background. Throws when the first list fails. */
  async start(): Promise<void> {
    await this.list();
    void this.watch();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retry);
    this.abort?.abort();
  }

  /** The store wrote `obj` (the API server's answer): the cache shows it before the watch does. */
  put(obj: KubeObject): void {
    // The watch brings our own writes again: the same version is no change.
    const old = this.objects.get(obj.metadata.name);
    if (old && old.metadata.resourceVersion === obj.metadata.resourceVersion) return;
    this.objects.set(obj.metadata.name, obj);
    this.onChange("put", obj);
  }

  remove(name: string): void {
    const old = this.objects.get(name);
    if (!old) return;
    this.objects.delete(name);
    this.onChange("delete", old);
  }

  private async list(): Promise<void> {
    const list = await this.api.list(this.plural);
    const seen = new Set<string>();
    for (const obj of list.items) {
      obj.metadata.namespace ??= this.api.namespace;
      seen.add(obj.metadata.name);
      this.put(obj);
    }
    for (const name of [...this.objects.keys()]) if (!seen.has(name)) this.remove(name);
    this.resourceVersion = list.metadata.resourceVersion;
  }

  private async watch(): Promise<void> {
    if (this.stopped) return;
    let gone = false;
    const ended = (err?: KubeError) => {
      this.abort = undefined;
      if (this.stopped) return;
      if (err && !gone) this.unreachable(err);
      this.retry = setTimeout(() => void this.resume(gone), err ? this.nextBackoff() : 0);
    };
    try {
      this.abort = await this.api.watch(this.plural, this.resourceVersion, (type, obj) => {
        switch (type) {
          case "ADDED":
          case "MODIFIED":
            obj.metadata.namespace ??= this.api.namespace;
            this.put(obj);
            break;
          case "DELETED":
            this.remove(obj.metadata.name);
            break;
          case "BOOKMARK":
            break;
          case "ERROR": {
            // A Status: 410 Gone (Expired) when our version is older than the server keeps.
            if ((obj as unknown as { code?: number }).code === 410) gone = true;
            this.abort?.abort();
            return;
          }
        }
        if (obj.metadata?.resourceVersion) this.resourceVersion = obj.metadata.resourceVersion;
        this.backoff = MIN_BACKOFF_MS;
      }, ended);
      // Stopped while the watch was being opened: stop() found nothing to abort then.
      if (this.stopped) this.abort?.abort();
    } catch (e) {
      ended(e as KubeError);
    }
  }

  private async resume(relist: boolean): Promise<void> {
    if (this.stopped) return;
    if (relist) {
      try {
        await this.list();
        log.info(`watch of ${this.plural} resumed with a fresh list (its version had expired: 410 Gone)`);
      } catch (e) {
        this.unreachable(e as KubeError);
        this.retry = setTimeout(() => void this.resume(true), this.nextBackoff());
        return;
      }
    }
    void this.watch();
  }

  private nextBackoff(): number {
    const ms = this.backoff;
    this.backoff = Math.min(this.backoff * 2, MAX_BACKOFF_MS);
    return ms;
  }

  private unreachable(err: KubeError): void {
    const now = Date.now();
    if (now - this.lastLog < LOG_EVERY_MS) return;
    this.lastLog = now;
    log.warn(`${err.message}; serving ${this.plural} from the cache and retrying`);
  }
}
