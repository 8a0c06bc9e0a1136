/**
 * README's commands run as written: every ```sh block marked `<!-- runnable -->` is
 * run, in order, on a fresh clone of this repository (what is committed, as a new
 * user gets it), with a clean home directory and no jmp environment. Each block runs
 * in its own bash with `set -euo pipefail`, from the clone's top, as a reader would
 * paste it; a block that fails fails the test with what it printed.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { ROOT, tempDir } from "./helpers.ts";

const work = tempDir("jmp-readme-");
afterAll(() => work.remove());

const RUNNABLE = /<!-- runnable -->\n```sh\n([\s\S]*?)```/g;

export function runnableBlocks(markdown: string): string[] {
  return [...markdown.matchAll(RUNNABLE)].map((m) => m[1]!);
}

test("README has runnable blocks, and the marker finds only sh blocks right after it", () => {
  const blocks = runnableBlocks(readFileSync(join(ROOT, "README.md"), "utf8"));
  expect(blocks.length).toBeGreaterThanOrEqual(4);
  expect(runnableBlocks("<!-- runnable -->\n```ts\nx\n```\n<!-- runnable -->\n```sh\necho ok\n```\n")).toEqual(["echo ok\n"]);
});

test("every runnable block of README runs as written on a fresh clone", () => {
  const clone = join(work.path, "jmp");
  const home = join(work.path, "home");
  mkdirSync(home);
  const git = Bun.spawnSync(["git", "clone", "--quiet", "--no-hardlinks", ROOT, clone], { stdout: "pipe", stderr: "pipe" });
  expect(git.stderr.toString()).toBe("");
  const env = {
    HOME: home,
    TMPDIR: work.path,
    // The machine's Node.js and npm, and nothing of ours: the blocks say where jmp and bun are.
    PATH: [...new Set([dirname(Bun.which("node")!), dirname(Bun.which("npm")!), "/usr/local/bin", "/usr/bin", "/bin"])].join(":"),
    NO_COLOR: "1",
    LANG: "C.UTF-8",
  };
  const blocks = runnableBlocks(readFileSync(join(clone, "README.md"), "utf8"));
  for (const [i, block] of blocks.entries()) {
    const t0 = performance.now();
    const r = Bun.spawnSync(["bash", "-euo", "pipefail", "-c", block], { cwd: clone, env, stdout: "pipe", stderr: "pipe", timeout: 240_000 });
    const out = `${r.stdout.toString()}${r.stderr.toString()}`;
    console.log(`README block ${i + 1}/${blocks.length}: exit ${r.exitCode} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    expect({ block, exit: r.exitCode, out: r.exitCode === 0 ? "" : out }).toEqual({ block, exit: 0, out: "" });
  }
}, 600_000);
