/**
 * Shared setup for ControllerState tests: a real SQLite file in a temp dir, a fake
 * clock, and a check, run after every committed change, that no exporter is ever
 * held by two leases and that exporter and lease agree on who holds what.
 */
import { expect } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ExporterStatus } from "../gen/jumpstarter/v1/common_pb.ts";
import { FakeClock } from "../common/fake-clock.ts";
import type { Lease } from "./model.ts";
import { ControllerState, type ControllerStateOptions } from "./state.ts";
import { SqliteStore } from "./store/sqlite.ts";

export const NS = "default";
export const MIN = 60_000;

export function checkInvariants(store: SqliteStore): void {
  const open = store.listLeases(undefined, { onlyActive: true }).filter((l) => l.exporter !== undefined);
  const holders = new Map<string, string>();
  for (const l of open) {
    const k = `${l.namespace}/${l.exporter}`;
    if (holders.has(k)) throw new Error(`exporter ${k} held by ${holders.get(k)} and ${l.name}`);
    holders.set(k, l.name);
  }
  for (const e of store.listExporters()) {
    const holder = holders.get(`${e.namespace}/${e.name}`) ?? null;
    if (e.leaseName !== holder) throw new Error(`exporter ${e.name} says lease ${e.leaseName}, leases say ${holder}`);
  }
}

export class Harness {
  readonly dir = mkdtempSync(join(tmpdir(), "jmp-state-"));
  readonly clock = new FakeClock();
  store!: SqliteStore;
  state!: ControllerState;
  checks = 0;

  constructor(private readonly opts: ControllerStateOptions = {}) {
    this.open();
  }

  /** The lab many tests start from: client alice, and exporter pi-1 (board=rpi4) online. */
  static async withAliceAndPi1(opts: ControllerStateOptions = {}): Promise<Harness> {
    const h = new Harness(opts);
    await h.state.createClient(NS, "alice");
    await h.onlineExporter("pi-1", { board: "rpi4" });
    return h;
  }

  /** Opens a store and a started state on the data dir, as a controller process would. */
  open(): void {
    this.store = SqliteStore.open(this.dir);
    this.state = new ControllerState(this.store, {
      now: this.clock.now,
      setTimer: this.clock.setTimer,
      clearTimer: this.clock.clearTimer,
      ...this.opts,
    });
    const check = () => {
      checkInvariants(this.store);
      this.checks++;
    };
    this.state.on("lease", check);
    this.state.on("exporter", check);
    // SQLite commits before start() returns; the rest of start() runs at the test's next await.
    void this.state.start();
  }

  /** Stops the state and closes the file, as if the controller process died. */
  crash(): void {
    this.state.stop();
    this.store.close();
  }

  close(): void {
    this.crash();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** An exporter as a live `jmp run` leaves it: registered, Status stream open, AVAILABLE. */
  async onlineExporter(name: string, labels: Record<string, string> = {}) {
    await this.state.createExporter(NS, name, labels);
    await this.state.register(NS, name, { "jumpstarter.dev/name": name }, []);
    await this.state.statusStreamOpened(NS, name);
    return this.state.reportStatus(NS, name, ExporterStatus.AVAILABLE, "Available");
  }

  lease(name: string): Lease {
    return this.state.getLease(NS, name);
  }

  /** A compact view of a lease: where it is and why. */
  summary(name: string): string {
    const l = this.lease(name);
    const cond = l.conditions.find((c) => c.status === "True") ?? l.conditions.find((c) => c.type === "Ready");
    const where = l.exporter ? `@${l.exporter}` : "";
    return `${cond ? `${cond.type}${cond.status === "False" ? "=False" : ""}/${cond.reason}` : "none"}${where}${l.ended ? " ended" : ""}`;
  }

  expectSummaries(expected: Record<string, string>): void {
    expect(Object.fromEntries(Object.keys(expected).map((n) => [n, this.summary(n)]))).toEqual(expected);
  }
}
