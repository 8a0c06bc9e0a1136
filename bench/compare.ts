/**
 * Before/after in the same run: `npm run bench:compare -- --before REV
 * [--only stream,router-call] [--rounds 3] [--quick] [--scale-levels 100,1000] [--scale-churn-ms 30000]`.
 *
 * Builds REV (any git revision) in a scratch directory from `git archive`, then
 * runs the chosen benchmarks of REV and of this checkout in alternation, each
 * side with its own benchmark code and its own dist/jmp, so a burst of load on
 * a shared machine hits both. Prints, per figure, the median of each side and
 * after/before; writes bench/compare.json. Needs this checkout's dist/jmp
 * (`npm run build`).
 */
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { median, type Result } from "./lib.ts";

const root = join(import.meta.dir, "..");
function parse() {
  return parseArgs({
    options: {
      before: { type: "string" },
      only: { type: "string", default: "stream,router-call" },
      rounds: { type: "string" },
      quick: { type: "boolean", default: false },
      "scale-levels": { type: "string" },
      "scale-churn-ms": { type: "string" },
    },
  }).values;
}
let values: ReturnType<typeof parse>;
try {
  values = parse();
} catch (e) {
  console.error(`bench/compare.ts: ${(e as Error).message}`);
  process.exit(2);
}
if (!values.before) {
  console.error("bench/compare.ts: --before REV is required (a git revision to measure against this checkout)");
  process.exit(2);
}
const rounds = Number(values.rounds ?? (values.quick ? 1 : 3));
if (!Number.isInteger(rounds) || rounds < 1) {
  console.error(`bench/compare.ts: --rounds: expected a whole number of at least 1, got '${values.rounds}'`);
  process.exit(2);
}

function sh(argv: string[], cwd = root): string {
  const r = Bun.spawnSync(argv, { cwd, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${argv.join(" ")} (in ${cwd}) exited ${r.exitCode}: ${r.stderr.toString().trim()}`);
  return r.stdout.toString().trim();
}

/** REV extracted and built once per commit; later runs reuse it. */
function prepare(rev: string): string {
  const found = Bun.spawnSync(["git", "rev-parse", "--verify", "--quiet", `${rev}^{commit}`], { cwd: root, stdout: "pipe", stderr: "pipe" });
  if (found.exitCode !== 0) {
    console.error(`bench/compare.ts: --before: '${rev}' is not a commit of ${root} (try a hash from 'git log --oneline')`);
    process.exit(2);
  }
  const sha = found.stdout.toString().trim();
  const dir = join(tmpdir(), `jmp-bench-before-${sha.slice(0, 12)}`);
  if (existsSync(join(dir, "dist", "jmp"))) return dir;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  console.error(`building ${rev} (${sha.slice(0, 12)}) in ${dir}`);
  sh(["sh", "-c", `git archive ${sha} | tar -x -C '${dir}'`]);
  // Same lockfile: share our node_modules instead of installing it again.
  if (readFileSync(join(dir, "package-lock.json"), "utf8") === readFileSync(join(root, "package-lock.json"), "utf8")) {
    symlinkSync(join(root, "node_modules"), join(dir, "node_modules"));
  } else {
    sh(["npm", "ci", "--no-audit", "--no-fund"], dir);
  }
  sh([process.execPath, "scripts/build.ts"], dir);
  return dir;
}

function runSide(tree: string): Result[] {
  const argv = [process.execPath, join(import.meta.dir, "one.ts"), "--tree", tree, "--only", values.only!];
  if (values.quick) argv.push("--quick");
  if (values["scale-levels"]) argv.push("--scale-levels", values["scale-levels"]);
  if (values["scale-churn-ms"]) argv.push("--scale-churn-ms", values["scale-churn-ms"]);
  const out = sh(argv);
  return JSON.parse(out.split("\n").at(-1)!) as Result[];
}

const before = prepare(values.before);
const samples = new Map<string, { unit: string; higherIsBetter: boolean; before: number[]; after: number[] }>();
const load = () => loadavg().map((l) => l.toFixed(2)).join(" ");
const loadBefore = load();
const started = performance.now();
for (let i = 0; i < rounds; i++) {
  // Alternate which side goes first, so neither always runs on a warmer machine.
  const order: ["before" | "after", string][] = i % 2 ? [["after", root], ["before", before]] : [["before", before], ["after", root]];
  for (const [side, tree] of order) {
    for (const r of runSide(tree)) {
      const s = samples.get(r.name) ?? { unit: r.unit, higherIsBetter: r.ratio === r.floor / r.value && r.floor !== r.value, before: [], after: [] };
      s[side].push(r.value);
      samples.set(r.name, s);
    }
    console.error(`round ${i + 1}/${rounds}: ${side} done`);
  }
}

const fmt = (v: number, unit: string) => `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${unit}`;
console.log(`${"figure".padEnd(36)} ${"before".padStart(14)} ${"after".padStart(14)} ${"after/before".padStart(13)}`);
const rows = [];
for (const [name, s] of samples) {
  if (!s.before.length || !s.after.length) continue;
  const b = median(s.before), a = median(s.after);
  rows.push({ name, unit: s.unit, before: b, after: a, change: a / b, beforeRuns: s.before, afterRuns: s.after });
  console.log(`${name.padEnd(36)} ${fmt(b, s.unit).padStart(14)} ${fmt(a, s.unit).padStart(14)} ${`${(a / b).toFixed(2)}x`.padStart(13)}`);
}
const machine = `${availableParallelism()} cpus, ${process.arch}, load average ${loadBefore} before, ${load()} after`;
console.log(`median of ${rounds} run(s) per side, alternating; ${machine}; ${((performance.now() - started) / 1000).toFixed(0)} s`);
writeFileSync(join(import.meta.dir, "compare.json"), `${JSON.stringify({ before: values.before, quick: values.quick, rounds, machine, date: new Date().toISOString(), rows }, null, 2)}\n`);
