/**
 * Refused calls in the audit log, without letting a flood of them flood it: a client
 * retrying with an expired token every 100 ms, or a scanner, would otherwise write an
 * entry per call. The first PER_MINUTE refusals of each minute are recorded one by one;
 * the rest are counted and recorded as one entry when the minute is over.
 */
import { getLogger } from "../common/log.ts";
import { type Actor, actorOf, type NewAuditEntry } from "./audit.ts";

const log = getLogger("controller");
const WINDOW_MS = 60_000;
const PER_MINUTE = 60;

export interface Refused {
  /** The word (`expired`, `revoked`, `not-allowed`, ...), as the metrics count it. */
  reason: string;
  message: string;
  /** e.g. `jumpstarter.client.v1.ClientService/CreateLease`. */
  procedure: string;
  /** Who the token says it is, when it could be read. */
  who?: { kind: "Client" | "Exporter" | "Admin"; namespace: string; name: string };
}

type Entry = Omit<NewAuditEntry, "at">;

export class RefusalAudit {
  private windowStart = -Infinity;
  private inWindow = 0;
  private suppressed = 0;
  private timer: unknown;

  constructor(
    private readonly record: (entries: Entry[]) => Promise<void>,
    private readonly now: () => number = Date.now,
    private readonly timers: { set: (fn: () => void, ms: number) => unknown; clear: (h: unknown) => void } = {
      set: (fn, ms) => setTimeout(fn, ms),
      clear: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
    },
  ) {}

  refused(r: Refused): void {
    const now = this.now();
    if (now - this.windowStart >= WINDOW_MS) this.roll(now);
    if (++this.inWindow > PER_MINUTE) {
      this.suppressed++;
      this.timer ??= this.timers.set(() => this.roll(this.now()), this.windowStart + WINDOW_MS - now);
      return;
    }
    const actor: Actor = r.who ? actorOf(r.who.kind, r.who.name) : "unknown";
    const entry: Entry = {
      namespace: r.who?.namespace ?? "", action: "token.refuse", actor, reason: r.reason,
      detail: `${r.procedure}: ${r.message}`,
    };
    if (r.who?.kind === "Client") entry.client = r.who.name;
    if (r.who?.kind === "Exporter") entry.exporter = r.who.name;
    this.write([entry]);
  }

  /** Starts a new minute, first recording how many the last one left out. */
  private roll(now: number): void {
    if (this.timer !== undefined) this.timers.clear(this.timer);
    this.timer = undefined;
    if (this.suppressed > 0) {
      this.write([{
        namespace: "", action: "token.refuse", actor: "unknown", reason: "many",
        detail: `${this.suppressed} more calls were refused in the minute from ${new Date(this.windowStart).toISOString()}`,
      }]);
    }
    this.windowStart = now;
    this.inWindow = 0;
    this.suppressed = 0;
  }

  stop(): void {
    if (this.timer !== undefined) this.timers.clear(this.timer);
    this.timer = undefined;
  }

  private write(entries: Entry[]): void {
    this.record(entries).catch((e) => log.warn(`audit log: could not record a refused call: ${(e as Error).message}`));
  }
}
