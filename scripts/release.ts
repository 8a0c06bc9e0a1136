/**
 * `npm run release [-- --outdir DIR]`: the downloads, one executable per platform,
 * and their SHA256SUMS, in dist/ unless told. Each is built by scripts/build.ts (so
 * the version and git commit are baked in) on the Bun runtime of its platform, taken
 * from that platform's `@oven/bun-linux-*` npm package at our Bun's own version: a
 * release needs nothing but the npm registry, and building for arm64 needs no arm64
 * machine. (There is no native addon to fetch per platform: jmp uses no `usb` package.)
 * Beside them, the library as an npm package (`jmp-<version>.tgz`): a test suite in
 * the user's own project installs it with `bun add ./jmp-<version>.tgz`.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { basename, join, relative, resolve } from "node:path";
import pkg from "../package.json";

const root = join(import.meta.dir, "..");
const argv = process.argv.slice(2);
const outdirFlag = argv.indexOf("--outdir");
if (outdirFlag !== -1 && !argv[outdirFlag + 1]) fail("--outdir needs a directory");
const outdir = resolve(root, outdirFlag === -1 ? "dist" : argv[outdirFlag + 1]!);

const TARGETS = [
  { file: "jmp-linux-x64", target: "bun-linux-x64", runtime: "@oven/bun-linux-x64", runsHere: process.arch === "x64" },
  // For x86-64 CPUs without AVX2 (older Celerons, some mini PCs and VMs).
  { file: "jmp-linux-x64-baseline", target: "bun-linux-x64-baseline", runtime: "@oven/bun-linux-x64-baseline", runsHere: process.arch === "x64" },
  // Raspberry Pi 3/4/5 and other boards with a 64-bit OS; Bun has no 32-bit ARM build.
  { file: "jmp-linux-arm64", target: "bun-linux-arm64", runtime: "@oven/bun-linux-aarch64", runsHere: process.arch === "arm64" },
];

function fail(message: string): never {
  console.error(`release: ${message}`);
  process.exit(1);
}

function run(cmd: string[], cwd = root): string {
  const r = Bun.spawnSync(cmd, { cwd, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) fail(`${cmd.join(" ")} failed:\n${r.stderr.toString()}${r.stdout.toString()}`);
  return r.stdout.toString();
}

/** The `bun` of an @oven package at our Bun's version: installed already, or packed from the registry once. */
function runtimeOf(name: string): string {
  const installed = join(root, "node_modules", name);
  if (existsSync(join(installed, "bin/bun")) && JSON.parse(readFileSync(join(installed, "package.json"), "utf8")).version === Bun.version) {
    return join(installed, "bin/bun");
  }
  const cache = join(root, "node_modules/.cache/jmp-release", `${basename(name)}-${Bun.version}`);
  const exe = join(cache, "package/bin/bun");
  if (existsSync(exe)) return exe;
  rmSync(cache, { recursive: true, force: true });
  mkdirSync(cache, { recursive: true });
  // `npm pack` fetches the tarball whatever the package's os/cpu say (an install would refuse).
  const tarball = run(["npm", "pack", `${name}@${Bun.version}`, "--silent", "--pack-destination", cache]).trim().split("\n").at(-1)!;
  run(["tar", "-xzf", join(cache, tarball), "-C", cache]);
  rmSync(join(cache, tarball));
  if (!existsSync(exe)) fail(`${name}@${Bun.version} has no bin/bun`);
  return exe;
}

const commit = run(["git", "rev-parse", "--short=12", "HEAD"]).trim();
mkdirSync(outdir, { recursive: true });
const sums: string[] = [];
const rows: string[] = [];
for (const t of TARGETS) {
  const out = join(outdir, t.file);
  const started = performance.now();
  const build = Bun.spawnSync(
    [process.execPath, join(root, "scripts/build.ts"), "--target", t.target, "--outfile", relative(root, out), "--compile-executable-path", runtimeOf(t.runtime)],
    { cwd: root, stdout: "pipe", stderr: "inherit" },
  );
  if (build.exitCode !== 0 || !existsSync(out)) fail(`building ${t.file} failed`);
  rmSync(`${out}.map`, { force: true });
  // The one check that needs no emulator: the executable runs and knows what it is.
  if (t.runsHere) {
    const version = run([out, "version"]);
    if (!version.includes(`jmp ${pkg.version} (${commit},`)) fail(`${t.file} version says '${version.trim()}', expected ${pkg.version} (${commit})`);
  }
  sums.push(`${createHash("sha256").update(readFileSync(out)).digest("hex")}  ${t.file}`);
  const mb = (statSync(out).size / 1e6).toFixed(1);
  rows.push(`${t.file.padEnd(24)} ${mb.padStart(6)} MB  ${((performance.now() - started) / 1000).toFixed(1)} s${t.runsHere ? "" : "  (not run here)"}`);
}
// The library for `bun add`: package.json's "files" says what goes in (sources, no tests).
const tarball = run(["npm", "pack", "--silent", "--pack-destination", outdir]).trim().split("\n").at(-1)!;
sums.push(`${createHash("sha256").update(readFileSync(join(outdir, tarball))).digest("hex")}  ${tarball}`);
rows.push(`${tarball.padEnd(24)} ${(statSync(join(outdir, tarball)).size / 1e6).toFixed(1).padStart(6)} MB  (the library: bun add ./${tarball})`);
writeFileSync(join(outdir, "SHA256SUMS"), sums.join("\n") + "\n");
console.log(`jmp ${pkg.version} (${commit}) in ${relative(process.cwd(), outdir) || "."}/\n${rows.join("\n")}\nSHA256SUMS             (check with: sha256sum -c SHA256SUMS)`);
