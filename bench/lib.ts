/** What every benchmark file shares: the result shape and the statistics. */
import { readdirSync, readFileSync } from "node:fs";
import type { Socket } from "node:net";

export interface Result {
  name: string;
  value: number;
  floor: number;
  /** value / floor: above 1 means slower (or bigger) than the floor, whatever the unit. */
  ratio: number;
  unit: string;
  note: string;
}

export interface Options {
  quick: boolean;
}

export const MiB = 2 ** 20;

const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
/** The median; of an even count, the mean of the middle two. */
export function median(xs: number[]): number {
  const s = sorted(xs);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
export const percentile = (xs: number[], p: number) => sorted(xs)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!;

/** A figure where lower is better (time, memory): ratio = value / floor. */
export function cost(name: string, value: number, floor: number, unit: string, note = ""): Result {
  return { name, value, floor, ratio: value / floor, unit, note };
}

/** A figure where higher is better (throughput): ratio = floor / value, so above 1 still means worse. */
export function rate(name: string, value: number, floor: number, unit: string, note = ""): Result {
  return { name, value, floor, ratio: floor / value, unit, note };
}

/** A /proc file, or "" when the process has just exited (it then uses no memory either). */
function proc(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

/** The process and all its descendants (`jmp run` serves each session from a child process). */
function processTree(pid: number): number[] {
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  const children = tids.flatMap((tid) => proc(`/proc/${pid}/task/${tid}/children`).split(" ").filter(Boolean).map(Number));
  return [pid, ...children.flatMap(processTree)];
}

/**
 * Writes `total` bytes into a connected socket whose far end sends every byte back,
 * in 256 KiB chunks while reading the echo; the seconds until all of it is back.
 */
export async function echoOver(sock: Socket, total: number): Promise<number> {
  const chunk = Buffer.alloc(256 * 1024, 0x5a);
  const start = performance.now();
  const back = new Promise<void>((resolve) => {
    let got = 0;
    sock.on("data", (d: Buffer) => {
      got += d.byteLength;
      if (got >= total) resolve();
    });
  });
  for (let sent = 0; sent < total; sent += chunk.byteLength) {
    if (!sock.write(chunk)) await new Promise<void>((r) => sock.once("drain", () => r()));
  }
  await back;
  return (performance.now() - start) / 1000;
}

/** Resident set size of a running process with its descendants, in MiB, from /proc. */
export function rssMiB(pid: number): number {
  const kB = processTree(pid).reduce((sum, p) => sum + Number(/VmRSS:\s+(\d+) kB/.exec(proc(`/proc/${p}/status`))?.[1] ?? 0), 0);
  if (!kB) throw new Error(`process ${pid} is gone`);
  return kB / 1024;
}

/**
 * Memory a process tree takes from the machine, in MiB, with the pages of files it
 * maps counted once: the sum of each process's anonymous memory, plus the largest
 * file-backed resident set among them. `jmp run`'s supervisor and worker are one
 * executable and share its pages (the page cache holds them once), which a sum of
 * RSS counts twice; the largest of the two file-backed sets stands for their union
 * (the worker's holds nearly all of the supervisor's).
 */
export function sharedOnceMiB(pid: number): number {
  let anon = 0;
  let files = 0;
  for (const p of processTree(pid)) {
    const rollup = proc(`/proc/${p}/smaps_rollup`);
    const kB = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(rollup)?.[1] ?? 0);
    anon += kB("Anonymous");
    files = Math.max(files, kB("Rss") - kB("Anonymous"));
  }
  if (!anon) throw new Error(`process ${pid} is gone`);
  return (anon + files) / 1024;
}

/** CPU seconds (user + system) used so far by a process and its live descendants, from /proc. */
export function cpuSeconds(pid: number): number {
  return processTree(pid).reduce((sum, p) => {
    const stat = proc(`/proc/${p}/stat`);
    // Fields after the command name, which may hold spaces: utime and stime are the 14th and 15th.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // Clock ticks: `getconf CLK_TCK` is 100 on every Linux we run on.
    return sum + (stat ? (Number(fields[11]) + Number(fields[12])) / 100 : 0);
  }, 0);
}

/** Per-call latencies in µs of `n` sequential calls, and calls/s over the whole run. */
export async function sequential(call: () => Promise<unknown>, n: number): Promise<{ lat: number[]; perSecond: number }> {
  const lat: number[] = [];
  const start = performance.now();
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await call();
    lat.push((performance.now() - t) * 1000);
  }
  return { lat, perSecond: n / ((performance.now() - start) / 1000) };
}

/** Calls/s with `callers` concurrent loops sharing one connection, `n` calls in all. */
export async function concurrent(call: () => Promise<unknown>, n: number, callers: number): Promise<number> {
  const start = performance.now();
  let left = n;
  await Promise.all(Array.from({ length: callers }, async () => {
    while (left-- > 0) await call();
  }));
  return n / ((performance.now() - start) / 1000);
}

/** Latency figures (p50, p99) and throughput of a call against its floor, measured in alternating rounds. */
export async function callFigures(
  label: string,
  call: () => Promise<unknown>,
  floorCall: () => Promise<unknown>,
  opts: { calls: number; rounds: number; floorNote: string },
): Promise<Result[]> {
  for (let i = 0; i < 200; i++) {
    await call();
    await floorCall();
  }
  const lat: number[] = [], floorLat: number[] = [];
  let cps = 0, floorCps = 0, conc = 0, floorConc = 0;
  const per = Math.ceil(opts.calls / opts.rounds);
  // Alternate in rounds so that a burst of load on the shared machine hits both sides.
  for (let r = 0; r < opts.rounds; r++) {
    const a = await sequential(call, per);
    const b = await sequential(floorCall, per);
    lat.push(...a.lat);
    floorLat.push(...b.lat);
    cps += a.perSecond / opts.rounds;
    floorCps += b.perSecond / opts.rounds;
    conc += (await concurrent(call, per, 16)) / opts.rounds;
    floorConc += (await concurrent(floorCall, per, 16)) / opts.rounds;
  }
  const n = per * opts.rounds;
  return [
    cost(`${label} p50`, median(lat), median(floorLat), "µs", `${n} sequential calls; floor = ${opts.floorNote}`),
    cost(`${label} p99`, percentile(lat, 0.99), percentile(floorLat, 0.99), "µs", ""),
    rate(`${label} calls/s`, cps, floorCps, "calls/s", "one caller, one connection"),
    rate(`${label} calls/s x16`, conc, floorConc, "calls/s", "16 concurrent callers, one connection"),
  ];
}
