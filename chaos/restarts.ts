/**
 * Scenario 1: the controller killed (SIGKILL) and stopped (SIGTERM) again and again
 * under a storm of clients that create, use (Dial through the router, power on) and
 * release leases on a few `jmp run` exporters. In-process clients go through
 * src/client as `jmp shell` does; a few real `jmp shell` processes run beside them,
 * and a few more are killed outright while they wait. After each restart, and every
 * second while the controller is up, the database and the clients are checked
 * against chaos/invariants.ts.
 *
 * Recovery time: from the new controller's start to every exporter registered
 * again and a fresh lease on a spare exporter (the probe) usable for a driver call.
 */
import { join } from "node:path";
import { registerBuiltinClients } from "../drivers/catalog.ts";
import { PowerClient } from "../drivers/power/client.ts";
import { type ControllerConnection, openController } from "../src/client/controller.ts";
import { acquireSession, openLeasedSession } from "../src/client/leased-session.ts";
import { LeaseHold, PRESENCE_TIMEOUT_S } from "../src/client/lease-hold.ts";
import { LeaseEndedError } from "../src/client/leases.ts";
import type { ClientConfig } from "../src/common/client-config.ts";
import { ClientRegistry } from "../src/driver/registry.ts";
import type { Lab, Proc } from "../test/distributed/lab.ts";
import { checkAudit, type ClientsView, checkInvariants, type Phase, readLeases, readSnapshot, type Violation } from "./invariants.ts";
import { bounded, closeLab, type Options, pause, type Row, row, say, stackLines, startLab, stopController } from "./lib.ts";

/** The controller's sweep runs every 5 s: a silent client's lease goes within presence + one sweep. */
const SWEEP_MS = 5_000;
/** What a lease nobody uses may outlive the presence rule by: a sweep, and a loaded machine. */
const PRESENCE_BOUND_MS = PRESENCE_TIMEOUT_S * 1000 + SWEEP_MS + 5_000;
/** "An exporter is back within 5 s of the controller returning" (issue 11). */
const EXPORTER_BACK_MS = 5_000;
const SELECTOR = "board=chaos";
/** How long after a snapshot a shell may take to print the release the snapshot already saw. */
const SHELL_LINE_GRACE_MS = 5_000;
const LEASE_MS = 15 * 60_000;

interface Sizes {
  restarts: number;
  clients: number;
  exporters: number;
  shells: number;
  killed: number;
}

const QUICK: Sizes = { restarts: 6, clients: 8, exporters: 2, shells: 1, killed: 2 };
const FULL: Sizes = { restarts: 100, clients: 50, exporters: 4, shells: 3, killed: 6 };

type ClientPhase = "idle" | "creating" | Phase | "releasing";

/** What the run knows about who holds what, fed by every client and read by the checker. */
class Ledger {
  /** Exporter → clients using it now (claimed after a driver call worked, dropped before release). */
  readonly using = new Map<string, string[]>();
  /** Leases given up without a confirmed release, and since when. */
  readonly forgotten = new Map<string, number>();
  readonly dead: { lease: string; client: string; killedAt: number }[] = [];
  /** Violations seen by clients as they happen (two users of one exporter). */
  readonly seen: Violation[] = [];

  claim(exporter: string, client: string): void {
    const users = [...(this.using.get(exporter) ?? []), client];
    this.using.set(exporter, users);
    if (users.length > 1) this.seen.push({ kind: "double-assigned", message: `clients ${users.join(" and ")} used exporter ${exporter} at the same time` });
  }

  unclaim(exporter: string, client: string): void {
    const users = (this.using.get(exporter) ?? []).filter((c) => c !== client);
    if (users.length) this.using.set(exporter, users);
    else this.using.delete(exporter);
  }
}

interface Holder {
  readonly name: string;
  /** The lease held or waited for, its phase, and a counter that moves with every change. */
  state(): { lease?: string; phase: ClientPhase; exporter?: string; gen: number };
  /** Every lease created and not yet given back. */
  readonly known: Set<string>;
}

/** One in-process client: lease, Dial, power on, hold a moment, power on, release; again until stopped. */
class StormClient implements Holder {
  readonly known = new Set<string>();
  private current: { lease?: string; phase: ClientPhase; exporter?: string; gen: number } = { phase: "idle", gen: 0 };
  cycles = 0;
  readonly errors = new Map<string, number>();

  constructor(
    readonly name: string,
    private readonly connection: ControllerConnection,
    private readonly config: ClientConfig,
    private readonly ledger: Ledger,
  ) {}

  state() {
    return this.current;
  }

  private set(phase: ClientPhase, change: { lease?: string; exporter?: string } = {}): void {
    this.current = { ...this.current, ...change, phase, gen: this.current.gen + 1 };
  }

  async run(stop: AbortSignal): Promise<void> {
    const registry = registerBuiltinClients(new ClientRegistry());
    // Stopping gives the lease back: from now on it is not the client's to lose.
    stop.addEventListener("abort", () => this.set("releasing"), { once: true });
    while (!stop.aborted) {
      try {
        await this.cycle(registry, stop);
        this.cycles++;
      } catch (e) {
        if (stop.aborted) break;
        const why = (e as Error).message.replace(/[0-9a-f]{8}-[0-9a-f-]{27}/g, "L").replace(/\d+/g, "N").slice(0, 120);
        this.errors.set(why, (this.errors.get(why) ?? 0) + 1);
        await pause(100 + Math.random() * 400);
      }
    }
    this.connection.close();
  }

  /**
   * The steps of acquireSession, taken one by one so that the ledger knows the
   * moment a lease stops being the client's: a release (ours) is never a loss, a
   * lease that ends under a live client is.
   */
  private async cycle(registry: ClientRegistry, stop: AbortSignal): Promise<void> {
    this.set("creating", { lease: undefined, exporter: undefined });
    const hold = await LeaseHold.take(this.connection, { selector: SELECTOR, durationMs: LEASE_MS });
    this.known.add(hold.name);
    this.set("waiting", { lease: hold.name });
    let leased;
    try {
      const view = await hold.waitReady({ timeoutMs: LEASE_MS, signal: stop });
      this.set("ready", { exporter: view.exporter });
      leased = await openLeasedSession(this.connection, this.config, registry, hold, { signal: stop });
    } catch (e) {
      if (e instanceof LeaseEndedError && !stop.aborted) {
        this.ledger.seen.push({ kind: "lost", message: `lease ${hold.name} of ${this.name} ended while its client waited: ${e.message}` });
      }
      this.set("releasing");
      await this.giveBack(hold);
      throw e;
    }
    const exporter = leased.lease.exporter!;
    let claimed = false;
    try {
      const power = leased.session.root.child("power", PowerClient);
      await power.on();
      this.set("using");
      this.ledger.claim(exporter, this.name);
      claimed = true;
      await pause(100 + Math.random() * 700);
      await power.on();
    } finally {
      if (claimed) this.ledger.unclaim(exporter, this.name);
      this.set("releasing");
      await leased.close();
      await this.giveBack(hold);
      this.set("idle");
    }
  }

  /**
   * Releases the lease (once: a second call learns what the first did). One we did
   * not release had ended already: unless our own release did it (its answer lost
   * to a restart, so the retry was told it is released), the lease was lost. One
   * that cannot be released is forgotten, and the checker watches it.
   */
  private async giveBack(hold: LeaseHold): Promise<void> {
    if (await hold.release()) {
      this.known.delete(hold.name);
      return;
    }
    try {
      const view = await hold.api.get(hold.name);
      if (view.state === "Ended") {
        this.known.delete(hold.name);
        if (view.reason !== "Released") this.ledger.seen.push({ kind: "lost", message: `lease ${hold.name} of ${this.name} ended under its live client: ${view.reason}: ${view.message}` });
        return;
      }
    } catch {
      // The controller is away: whether it ended is for the checker to see.
    }
    if (this.known.delete(hold.name)) this.ledger.forgotten.set(hold.name, Date.now());
  }
}

/** A real `jmp shell -l … -- j power on`, started again each time it ends; its lease is read from its output. */
class ShellLoop implements Holder {
  readonly known = new Set<string>();
  /** Leases this client's shells said they released ("released lease X"). */
  readonly released = new Set<string>();
  private gen = 0;
  private proc?: Proc;
  runs = 0;
  readonly failures = new Map<string, number>();
  readonly problems: string[] = [];

  constructor(
    readonly name: string,
    private readonly lab: Lab,
    private readonly ledger: Ledger,
  ) {}

  state() {
    const p = this.proc;
    if (!p || p.exitCode !== null) return { phase: "idle" as const, gen: this.gen };
    let lease: string | undefined;
    let phase: ClientPhase = "creating";
    let exporter: string | undefined;
    for (const { text } of p.lines) {
      const m = /lease (\S+): (waiting|ready on exporter (\S+))/.exec(text);
      if (m) [lease, phase, exporter] = [m[1], m[3] ? "ready" : "waiting", m[3]];
      if (/released lease/.test(text)) phase = "releasing";
    }
    return { lease, phase, exporter, gen: this.gen + p.lines.length };
  }

  private noteReleases(p: Proc): void {
    for (const { text } of p.lines) {
      const m = /released lease (\S+)/.exec(text);
      if (m) this.released.add(m[1]!);
    }
  }

  async run(stop: AbortSignal): Promise<void> {
    while (!stop.aborted) {
      const p = this.lab.spawn(`${this.name}'s jmp shell`, ["shell", "-l", SELECTOR, "--client", this.name, "--duration", "15m", "--", "j", "power", "on"]);
      this.proc = p;
      const watch = setInterval(() => {
        const s = this.state();
        if (s.lease && s.phase !== "releasing") this.known.add(s.lease);
        this.noteReleases(p);
      }, 100);
      let code: number;
      try {
        code = await p.exited(10 * 60_000);
      } catch {
        p.signal("SIGKILL");
        code = await p.proc.exited;
        this.problems.push(`${this.name}'s jmp shell did not end within 10 min`);
      } finally {
        clearInterval(watch);
      }
      this.noteReleases(p);
      this.gen += p.lines.length + 1;
      this.runs++;
      const lease = this.state().lease ?? /lease (\S+):/.exec(p.output)?.[1];
      if (lease) {
        const released = p.output.includes(`released lease ${lease}`);
        if (this.known.delete(lease) && !released) this.ledger.forgotten.set(lease, Date.now());
      }
      const ended = /lease (\S+) ended(?: \(([^)]*)\))?; closing the shell/.exec(p.output);
      if (ended) this.ledger.seen.push({ kind: "lost", message: `lease ${ended[1]} of ${this.name} ended under its live jmp shell (${ended[2] ?? "no reason"})` });
      if (code !== 0) {
        const last = p.lines.map((l) => l.text).filter((t) => t.trim()).at(-1) ?? `exit ${code}`;
        const why = last.replace(/[0-9a-f]{8}-[0-9a-f-]{27}/g, "L").replace(/\d+/g, "N").slice(0, 120);
        this.failures.set(why, (this.failures.get(why) ?? 0) + 1);
      }
      const stack = stackLines(p.output);
      if (stack.length) this.problems.push(`${this.name}'s jmp shell printed a stack trace: ${stack[0]!.trim()}`);
      this.lab.procs.delete(p);
    }
  }
}

/** Starts a `jmp shell` that will wait in the queue, and kills it with SIGKILL once it says it waits. */
async function killWaitingShell(lab: Lab, client: string, ledger: Ledger): Promise<string> {
  const p = lab.spawn(`${client}'s doomed jmp shell`, ["shell", "-l", SELECTOR, "--client", client, "--duration", "15m", "--", "sleep", "600"]);
  const at = await p.waitLine(/lease \S+: (waiting|ready)/, { timeoutMs: 60_000 });
  const lease = /lease (\S+):/.exec(p.lines[at]!.text)![1]!;
  p.signal("SIGKILL");
  await p.proc.exited;
  // One that got its board before it was killed has dialled it: the lease is then kept by design.
  if (!/waiting/.test(p.lines[at]!.text)) return lease;
  ledger.dead.push({ lease, client, killedAt: Date.now() });
  lab.procs.delete(p);
  return lease;
}

/** Leases a spare exporter, powers it on and gives it back; tries again until it works. */
async function probe(connection: ControllerConnection, config: ClientConfig, deadline: number): Promise<void> {
  const registry = registerBuiltinClients(new ClientRegistry());
  for (;;) {
    try {
      const s = await acquireSession(connection, config, registry, { exporterName: "probe", durationMs: 60_000 }, { timeoutMs: Math.max(1000, deadline - Date.now()) });
      try {
        await s.session.root.child("power", PowerClient).on();
      } finally {
        await s.close();
      }
      return;
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`no fresh lease was usable: ${(e as Error).message}`);
      await pause(100);
    }
  }
}

export async function controllerRestarts(opts: Options, rows: Row[]): Promise<void> {
  const size = opts.quick ? QUICK : FULL;
  const out = row(`controller restarts (${size.restarts}× SIGKILL/SIGTERM, ${size.clients + size.shells} clients, ${size.exporters} exporters)`, rows);
  const lab = await startLab(opts);
  const ledger = new Ledger();
  const stop = new AbortController();
  const runs: Promise<void>[] = [];
  const db = join(lab.dataDir, "jumpstarter.db");
  const places = new Map<string, number>();
  const checked = new Set<string>();
  const found = new Map<string, Violation>();
  /**
   * A shell's lease found Released while the shell still looked ready: a shell says
   * "released lease X" only once its release is answered, so a snapshot can fall
   * between the commit and that line. Judged when the line comes (not lost) or
   * SHELL_LINE_GRACE_MS later (lost).
   */
  const shellReleases = new Map<string, { lease: string; shell: ShellLoop; violation: Violation; until: number }>();
  /** Drops what its shell has since said it released; reports the rest once past their time (or all of it, `final`). */
  const settleShellReleases = (report: (k: string, v: Violation) => void, final = false) => {
    for (const [k, pending] of shellReleases) {
      if (pending.shell.released.has(pending.lease)) shellReleases.delete(k);
      else if (final || Date.now() > pending.until) {
        shellReleases.delete(k);
        report(k, pending.violation);
      }
    }
  };
  let startedAt = Date.now();
  try {
    const exporters = [...Array(size.exporters).keys()].map((i) => `board-${i}`);
    for (const e of exporters) await lab.addExporter(e, { board: "chaos" });
    await lab.addExporter("probe", { spare: "yes" });
    const clientNames = [...Array(size.clients).keys()].map((i) => `c${String(i).padStart(2, "0")}`);
    const shellNames = [...Array(size.shells).keys()].map((i) => `shell${i}`);
    const doomed = [...Array(size.killed).keys()].map((i) => `doomed${i}`);
    const everyone = [...clientNames, ...shellNames, ...doomed, "prober"];
    for (let i = 0; i < everyone.length; i += 8) await Promise.all(everyone.slice(i, i + 8).map((c) => lab.addClient(c)));
    const procs = await Promise.all([...exporters, "probe"].map((e) => lab.runExporter(e)));
    const env = { ...process.env, ...lab.env };
    const connect = (name: string) => openController({ client: name, env });
    const clients = clientNames.map((n) => {
      const c = connect(n);
      return new StormClient(n, c, c.config, ledger);
    });
    const shells = shellNames.map((n) => new ShellLoop(n, lab, ledger));
    const holders: Holder[] = [...clients, ...shells];
    const prober = connect("prober");
    say(opts, `storm: ${clients.length} clients, ${shells.length} shells on ${exporters.length} exporters`);
    for (const h of [...clients, ...shells]) runs.push(h.run(stop.signal));

    /** Checks a snapshot against what the clients know; only leases whose phase held still while it was read are judged. */
    const check = (): void => {
      const before = new Map(holders.map((h) => [h, h.state()]));
      let snap;
      try {
        snap = readSnapshot(db);
      } catch (e) {
        out.notes.push(`a snapshot could not be read: ${(e as Error).message}`);
        return;
      }
      const now = Date.now();
      const live: ClientsView["live"] = [];
      const known = new Set<string>();
      for (const h of holders) {
        for (const l of h.known) known.add(l);
        const a = before.get(h)!;
        const b = h.state();
        if (a.gen !== b.gen || !a.lease) continue;
        if (a.phase === "waiting" || a.phase === "ready" || a.phase === "using") live.push({ lease: a.lease, client: h.name, phase: a.phase, exporter: a.exporter });
      }
      for (const l of ledger.dead) known.delete(l.lease);
      const view: ClientsView = {
        live,
        known,
        forgotten: ledger.forgotten,
        dead: ledger.dead.map((d) => ({ lease: d.lease, client: d.client, deadline: Math.max(d.killedAt, startedAt) + PRESENCE_BOUND_MS })),
        using: ledger.using,
      };
      for (const l of [...live.map((x) => x.lease), ...snap.leases.map((x) => x.name), ...ledger.dead.map((d) => d.lease)]) checked.add(l);
      const violations = [...checkInvariants(snap, view, { now, startedAt, orphanAfterMs: PRESENCE_BOUND_MS, places }), ...ledger.seen.splice(0)];
      const lostNames = violations.filter((v) => v.kind === "lost").map((v) => /lease (\S+)/.exec(v.message)![1]!);
      const ended = lostNames.length ? readLeases(db, lostNames) : new Map();
      const report = (k: string, v: Violation) => {
        found.set(k, v);
        say(opts, `VIOLATION ${v.kind}: ${v.message}`);
      };
      for (const v of violations) {
        const lease = /lease (\S+)/.exec(v.message)?.[1] ?? v.message;
        const k = `${v.kind} ${lease}`;
        if (found.has(k) || shellReleases.has(k)) continue;
        const why = ended.get(lease);
        const judged = why ? { ...v, message: `${v.message} (it ended: ${why.reason || "no reason"})` } : v;
        const shell = shells.find((sh) => v.message.includes(` of ${sh.name} `));
        if (v.kind === "lost" && shell && why?.reason === "Released") shellReleases.set(k, { lease, shell, violation: judged, until: Date.now() + SHELL_LINE_GRACE_MS });
        else report(k, judged);
      }
      settleShellReleases(report);
    };
    const checker = setInterval(() => {
      if (lab.controller.exitCode === null) check();
    }, 1000);

    try {
      for (let i = 0; i < size.restarts; i++) {
        await pause(opts.quick ? 1000 + Math.random() * 2000 : 2000 + Math.random() * 3000);
        if (i === 0 || (size.killed > 1 && i === Math.floor(size.restarts / 2))) {
          for (const d of doomed.splice(0, Math.ceil(size.killed / 2))) {
            const lease = await killWaitingShell(lab, d, ledger);
            out.faults++;
            say(opts, `killed ${d}'s waiting jmp shell (lease ${lease})`);
          }
        }
        const signal = i % 2 === 0 ? "SIGKILL" : "SIGTERM";
        const marks = procs.map((p) => p.lines.length);
        check();
        const { code, stack } = await stopController(lab, signal);
        out.faults++;
        // 143 (128 + SIGTERM) is a clean stop, as the systemd unit says (SuccessExitStatus).
        if (signal === "SIGTERM" && code !== 0 && code !== 143) out.problems.push(`restart ${i + 1}: the controller exited with ${code} after SIGTERM`);
        if (stack.length) out.problems.push(`restart ${i + 1}: the controller's log has a stack trace: ${stack[0]!.trim()}`);
        await pause(Math.random() * (opts.quick ? 500 : 1500));
        const t0 = performance.now();
        await lab.startController();
        startedAt = Date.now();
        const listening = performance.now();
        try {
          await bounded(`recovery after restart ${i + 1} (${signal})`, 90_000, async () => {
            const back = await Promise.all(procs.map(async (p, n) => p.lines[await p.waitLine(/registered as default\//, { from: marks[n], timeoutMs: 60_000 })]!.at));
            const late = back.map((at, n) => ({ at, name: [...exporters, "probe"][n] })).filter((b) => b.at - listening > EXPORTER_BACK_MS);
            for (const l of late) out.problems.push(`restart ${i + 1} (${signal}): exporter ${l.name} registered ${((l.at - listening) / 1000).toFixed(1)} s after the controller listened again (limit ${EXPORTER_BACK_MS / 1000} s)`);
            await probe(prober, prober.config, Date.now() + 60_000);
          });
          out.recoveryMs.push(performance.now() - t0);
        } catch (e) {
          out.problems.push(`restart ${i + 1} (${signal}): ${(e as Error).message}`);
        }
        say(opts, `restart ${i + 1}/${size.restarts} (${signal}): usable again ${((performance.now() - t0) / 1000).toFixed(1)} s after the start`);
        check();
      }

      // The storm stops; then every lease must end: released by its client, or given back by the presence rule.
      say(opts, "stopping the storm");
      stop.abort();
      await bounded("the clients' last leases", 120_000, () => Promise.all(runs));
      const last = Math.max(startedAt, ...ledger.dead.map((d) => d.killedAt), ...ledger.forgotten.values());
      const settled = last + PRESENCE_BOUND_MS + 1000;
      say(opts, `waiting ${Math.round((settled - Date.now()) / 1000)} s for the presence rule`);
      opts.idle();
      while (Date.now() < settled) {
        check();
        await pause(1000);
      }
      check();
      // What is still waiting for its shell's line has had at least the presence rule's time.
      settleShellReleases((k, v) => found.set(k, v), true);
      const open = readSnapshot(db).leases;
      for (const l of open) {
        const k = `held-by-dead ${l.name}`;
        if (!found.has(k)) found.set(k, { kind: "held-by-dead", message: `lease ${l.name} of ${l.client} is still open ${Math.round((Date.now() - last) / 1000)} s after the storm ended${l.exporter ? `, holding ${l.exporter}` : ""}` });
      }
    } finally {
      clearInterval(checker);
      stop.abort();
      prober.close();
    }

    out.leasesChecked = checked.size;
    const all = [...found.values(), ...checkAudit(db)];
    out.lost = all.filter((v) => v.kind === "lost").length;
    out.doubleAssigned = all.filter((v) => v.kind === "double-assigned").length;
    out.heldByDead = all.filter((v) => v.kind === "held-by-dead").length;
    out.problems.push(...all.map((v) => `${v.kind}: ${v.message}`));
    for (const s of shells) out.problems.push(...s.problems);
    const cycles = clients.reduce((a, c) => a + c.cycles, 0) + shells.reduce((a, s) => a + s.runs, 0);
    out.notes.push(`${cycles} leases used and released by the storm; ${ledger.dead.length} waiting shells killed`);
    const errors = new Map<string, number>();
    for (const c of clients) for (const [k, n] of c.errors) errors.set(k, (errors.get(k) ?? 0) + n);
    for (const s of shells) for (const [k, n] of s.failures) errors.set(`jmp shell: ${k}`, (errors.get(`jmp shell: ${k}`) ?? 0) + n);
    for (const [k, n] of [...errors].sort((a, b) => b[1] - a[1]).slice(0, 8)) out.notes.push(`client error ×${n}: ${k}`);
  } finally {
    stop.abort();
    await Promise.allSettled(runs);
    await closeLab(opts, lab).catch((e: Error) => out.problems.push(`cleanup: ${e.message.split("\n")[0]}`));
  }
}
