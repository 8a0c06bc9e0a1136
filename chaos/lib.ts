/** What the chaos scenarios share: the row each one reports, the table, and their labs. */
import { percentile } from "../bench/lib.ts";
import { Lab } from "../test/distributed/lab.ts";

export interface Options {
  quick: boolean;
  /** Prints what happens as it happens (`--verbose`). */
  verbose: boolean;
  /** This scenario's labs (see startLab): killed outright if it overruns its time. */
  labs: Set<Lab>;
  /** Says the scenario only waits from now on (a clock in the controller): the run may start the next one meanwhile. */
  idle(): void;
}

/** One line of the table: a scenario, or one part of one. */
export interface Row {
  scenario: string;
  /** Faults injected: signals, resets, malformed requests, bad tokens, broken files. */
  faults: number;
  /** Lease observations checked against the invariants (undefined: the scenario has no leases). */
  leasesChecked?: number;
  lost?: number;
  doubleAssigned?: number;
  heldByDead?: number;
  /** From the fault to working again, ms, one per fault that has a recovery. */
  recoveryMs: number[];
  /** Every invariant broken, one line each: what broke and where. */
  problems: string[];
  /** What a reader should know that is not a failure (client errors seen, measurements). */
  notes: string[];
}

/** A scenario fills in its rows as it goes: a scenario cut off by its time limit still reports what it saw. */
export type Scenario = (opts: Options, rows: Row[]) => Promise<void>;

export function row(scenario: string, rows?: Row[]): Row {
  const r: Row = { scenario, faults: 0, recoveryMs: [], problems: [], notes: [] };
  rows?.push(r);
  return r;
}

/** A lab (test/distributed/lab.ts) that the run kills if the scenario overruns: it leaves no process behind. */
export async function startLab(opts: Options, labOpts: Parameters<typeof Lab.start>[0] = {}): Promise<Lab> {
  const lab = await Lab.start(labOpts);
  opts.labs.add(lab);
  return lab;
}

export async function closeLab(opts: Options, lab: Lab): Promise<void> {
  opts.labs.delete(lab);
  await lab.close();
}

/**
 * Stops the lab's controller with `signal` and waits for it; its process leaves the
 * lab (a restart makes a new one). Returns its exit code and any stack trace it logged.
 */
export async function stopController(lab: Lab, signal: NodeJS.Signals): Promise<{ code: number; stack: string[] }> {
  const p = lab.controller;
  p.signal(signal);
  const code = await p.exited(10_000);
  lab.procs.delete(p);
  return { code, stack: stackLines(p.output) };
}

/** SIGKILL for every process of every lab still open. */
export async function abandonLabs(labs: Set<Lab>): Promise<void> {
  for (const lab of labs) {
    for (const p of lab.procs) p.signal("SIGKILL");
    await Promise.allSettled([...lab.procs].map((p) => p.proc.exited));
    lab.dir.remove();
  }
  labs.clear();
}

export const verdict = (r: Row) => (r.problems.length ? "FAIL" : "ok");

const ms = (xs: number[], p: number) => (xs.length ? `${(percentile(xs, p) / 1000).toFixed(1)} s` : "–");
const count = (n: number | undefined) => (n === undefined ? "–" : String(n));

export const HEADER = ["scenario", "faults", "leases checked", "lost", "double-assigned", "held by dead", "recovery p50", "recovery p99", "verdict"];

export function cells(r: Row): string[] {
  return [r.scenario, String(r.faults), count(r.leasesChecked), count(r.lost), count(r.doubleAssigned), count(r.heldByDead),
    ms(r.recoveryMs, 0.5), ms(r.recoveryMs, 0.99), verdict(r)];
}

/** The table as Markdown, which reads as well in a terminal as in the README. */
export function table(rows: Row[]): string {
  const all = [HEADER, ...rows.map(cells)];
  const widths = HEADER.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
  const line = (r: string[]) => `| ${r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(" | ")} |`;
  return [line(HEADER), `|${widths.map((w, i) => (i === 0 ? `-${"-".repeat(w)}-` : `-${"-".repeat(w)}:`)).join("|")}|`, ...rows.map((r) => line(cells(r)))].join("\n");
}

/** A log line for --verbose, with seconds since the run started. */
export function say(opts: Options, text: string): void {
  if (opts.verbose) console.error(`[${(performance.now() / 1000).toFixed(1)}] ${text}`);
}

/** Resolves after `ms`: pacing between faults, never an assertion. */
export const pause = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** `fn` or a rejection after `ms`, naming `what`: no step of a scenario may hang the run. */
export async function bounded<T>(what: string, ms: number, fn: () => Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      fn(),
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not finish within ${Math.round(ms / 1000)} s`)), ms))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Lines of a process's output that are frames of a JavaScript stack trace. */
export function stackLines(text: string): string[] {
  return text.split("\n").filter((l) => /^\s+at .*(\(|:\d+)/.test(l) || /^\s*\d+ \| /.test(l));
}
