/**
 * Builds dist/jmp (one executable holding the runtime) and the dist/j link.
 * `bun scripts/build.ts [--target bun-linux-arm64] [--outfile F] [--compile-executable-path BUN]`
 * (the last: the target's runtime from disk instead of a download; see scripts/release.ts).
 */
import { readdirSync, rmSync, symlinkSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import pkg from "../package.json";

const root = join(import.meta.dir, "..");
const argv = process.argv.slice(2);
const flag = (name: string) => {
  const i = argv.indexOf(name);
  return i === -1 ? undefined : argv[i + 1];
};
const outfile = join(root, flag("--outfile") ?? "dist/jmp");
const target = flag("--target");

const git = Bun.spawnSync(["git", "rev-parse", "--short=12", "HEAD"], { cwd: root, stderr: "ignore" });
const commit = git.exitCode === 0 ? git.stdout.toString().trim() : "unknown";

const cmd = [
  // Not --minify: mangled identifiers would reach users as class names in messages
  // ("driver Hu") where upstream shows "driver MockPower".
  process.execPath, "build", "--compile", "--minify-syntax", "--minify-whitespace", "--sourcemap",
  // Bytecode halves start-up time; it requires ESM output (see toolchain.md).
  "--bytecode", "--format=esm",
  // Each `await import()` of a role becomes a chunk of its own, loaded when it runs.
  // Without it the one ESM file hoists every role's imports of Node's built-ins
  // (http2, crypto, http, dns, zlib…) to its top, and `jmp version` loads them all:
  // 22 → 11.5 ms, against 4.5 ms for an empty compiled program.
  "--splitting",
  "--define", `__JMP_VERSION__=${JSON.stringify(pkg.version)}`,
  "--define", `__JMP_COMMIT__=${JSON.stringify(commit)}`,
  ...(target ? [`--target=${target}`] : []),
  ...(flag("--compile-executable-path") ? ["--compile-executable-path", flag("--compile-executable-path")!] : []),
  join(root, "src/cli/main.ts"), "--outfile", outfile,
];
const result = Bun.spawnSync(cmd, { cwd: root, stdout: "inherit", stderr: "inherit" });
if (result.exitCode !== 0) process.exit(result.exitCode ?? 1);
// With --splitting, `bun build` also leaves each chunk's source map beside the
// executable; the executable holds its own, so these are clutter in dist/.
for (const f of readdirSync(dirname(outfile))) {
  if (f === `${basename(outfile)}.map` || /-[a-z0-9]{8}\.js\.map$/.test(f)) rmSync(join(dirname(outfile), f));
}
// `bun build` has exited 0 after printing an error before; check the file runs.
// (A cross-target build may not run here at all: scripts/release.ts checks those.)
const check = target ? undefined : Bun.spawnSync([outfile, "version"], { stderr: "pipe" });
if (check && check.exitCode !== 0) {
  console.error(`built ${outfile} but it does not run: ${check.stderr.toString()}`);
  process.exit(1);
}
if (!flag("--outfile")) {
  const link = join(dirname(outfile), "j");
  rmSync(link, { force: true });
  symlinkSync(basename(outfile), link);
}
console.log(`built ${outfile} (${commit})`);
