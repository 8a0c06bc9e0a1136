/**
 * `npm run chaos [-- --quick] [-- --only NAME,…] [-- --verbose]`: fault injection on
 * the built dist/jmp (see chaos/README.md). Runs the checker's own tests first (a
 * check that cannot fail proves nothing), then each scenario; prints the table,
 * writes chaos/results.json, and exits 1 naming every scenario and what broke.
 * Needs dist/jmp (`npm run build`).
 */
import { existsSync, writeFileSync } from "node:fs";
import { availableParallelism, loadavg } from "node:os";
import { join } from "node:path";
import { configureLogging } from "../src/common/log.ts";
import { JMP } from "../test/helpers.ts";
import { abandonLabs, bounded, type Options, type Row, row, type Scenario, table, verdict } from "./lib.ts";
import { malformedRpcs } from "./malformed.ts";
import { malformedConfigs } from "./malformed-config.ts";
import { leaderFailovers } from "./failover.ts";
import { networkFaults } from "./network.ts";
import { controllerRestarts } from "./restarts.ts";
import { tokenNegatives } from "./tokens.ts";

/** In this order: network first (its limits are timing), and the rest beside the restarts' last wait. */
const SCENARIOS: Record<string, { run: Scenario; quickMs: number; fullMs: number }> = {
  network: { run: networkFaults, quickMs: 120_000, fullMs: 10 * 60_000 },
  restarts: { run: controllerRestarts, quickMs: 120_000, fullMs: 25 * 60_000 },
  malformed: { run: malformedRpcs, quickMs: 90_000, fullMs: 10 * 60_000 },
  configs: { run: malformedConfigs, quickMs: 60_000, fullMs: 10 * 60_000 },
  tokens: { run: tokenNegatives, quickMs: 60_000, fullMs: 60_000 },
  failover: { run: leaderFailovers, quickMs: 150_000, fullMs: 10 * 60_000 },
};

const args = process.argv.slice(2);
const flag = (name: string) => args.includes(name);
const value = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const base = { quick: flag("--quick"), verbose: flag("--verbose") };
const asked = value("--only")?.split(",") ?? Object.keys(SCENARIOS);
const only = Object.keys(SCENARIOS).filter((name) => asked.includes(name));
for (const name of asked) {
  if (!SCENARIOS[name]) {
    console.error(`--only: no scenario '${name}' (there are: ${Object.keys(SCENARIOS).join(", ")})`);
    process.exit(2);
  }
}
if (!existsSync(JMP)) {
  console.error(`${JMP} is missing: run 'npm run build' first`);
  process.exit(2);
}
// The in-process clients log their retries; the table says what matters.
configureLogging({ level: base.verbose ? "info" : "error" });

const load = () => loadavg().map((l) => l.toFixed(2)).join(" ");
const loadBefore = load();
const started = performance.now();
const rows: Row[] = [];

const self = Bun.spawnSync([process.execPath, "test", "./chaos"], { cwd: join(import.meta.dir, ".."), stdout: "pipe", stderr: "pipe" });
const selfCheck = row("the checks themselves (bun test ./chaos)");
if (self.exitCode !== 0) selfCheck.problems.push(`the checker's own tests failed:\n${self.stderr.toString().trim().split("\n").slice(-20).join("\n")}`);
rows.push(selfCheck);

/** One scenario, bounded in time; what it reported goes to `rows` whatever happens. */
async function runScenario(name: string, opts: Options, rows: Row[]): Promise<void> {
  const s = SCENARIOS[name]!;
  const t0 = performance.now();
  try {
    await bounded(`scenario ${name}`, opts.quick ? s.quickMs : s.fullMs, () => s.run(opts, rows));
  } catch (e) {
    (rows.at(-1) ?? row(name, rows)).problems.push(e instanceof Error ? e.message : String(e));
    await abandonLabs(opts.labs);
  }
  for (const r of rows) r.problems = [...new Set(r.problems)];
  if (opts.verbose) console.error(`${name}: ${((performance.now() - t0) / 1000).toFixed(0)} s`);
}

// A scenario that says it only waits (opts.idle) finishes in the background while the
// next ones run; one at a time, so that no two scenarios load the machine at once.
const byScenario = new Map<string, Row[]>();
/** Every scenario's labs: a run stopped by Ctrl-C, a closed terminal or SIGTERM leaves none of their processes behind. */
const everyLab = new Set<Options["labs"]>();
for (const [sig, code] of [["SIGINT", 130], ["SIGHUP", 129], ["SIGTERM", 143]] as const) {
  process.on(sig, () => {
    console.error(`chaos: ${sig}: stopping every lab`);
    void Promise.all([...everyLab].map((labs) => abandonLabs(labs))).finally(() => process.exit(code));
  });
}
let background: Promise<void> | undefined;
for (const name of only) {
  let idle!: () => void;
  const wentIdle = new Promise<"idle">((resolve) => (idle = () => resolve("idle")));
  const mine: Row[] = [];
  byScenario.set(name, mine);
  const labs: Options["labs"] = new Set();
  everyLab.add(labs);
  const done = runScenario(name, { ...base, labs, idle }, mine);
  if ((await Promise.race([done.then(() => "done" as const), wentIdle])) === "idle") {
    await background;
    background = done;
  }
}
await background;
for (const name of only) rows.push(...byScenario.get(name)!);

const machine = `${availableParallelism()} cpus, ${process.arch}, load average ${loadBefore} before, ${load()} after`;
const seconds = Math.round((performance.now() - started) / 1000);
console.log(table(rows));
console.log(`${base.quick ? "quick" : "full"} run, ${seconds} s; ${machine}`);
for (const r of rows) for (const n of r.notes) console.log(`  ${r.scenario}: ${n}`);
const failed = rows.filter((r) => verdict(r) === "FAIL");
for (const r of failed) for (const p of r.problems) console.log(`FAIL ${r.scenario}: ${p}`);
writeFileSync(
  join(import.meta.dir, "results.json"),
  `${JSON.stringify({ quick: base.quick, machine, seconds, date: new Date().toISOString(), rows: rows.map((r) => ({ ...r, verdict: verdict(r) })) }, null, 2)}\n`,
);
// Clients' HTTP/2 connections and timers would keep the process alive.
process.exit(failed.length ? 1 : 0);
