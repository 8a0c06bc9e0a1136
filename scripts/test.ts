/**
 * `npm test`: builds dist/jmp (end-to-end tests run it as users do), runs every
 * test beside the code and in test/, and ends with one line `N passed, N failed`.
 * Extra arguments go to `bun test` (e.g. a path filter).
 */
import { join } from "node:path";

const root = join(import.meta.dir, "..");
const extra = process.argv.slice(2);

if (!process.env.JMP_SKIP_BUILD) {
  const build = Bun.spawnSync([process.execPath, join(root, "scripts/build.ts")], { cwd: root, stdout: "inherit", stderr: "inherit" });
  if (build.exitCode !== 0) {
    console.log("0 passed, 1 failed");
    process.exit(1);
  }
}

// "./" makes bun take these as folders, not as name filters ("test" would also match
// examples/board.test.ts, which needs a leased board).
const paths = extra.length ? extra : ["./src", "./drivers", "./test"];
// End-to-end tests start real processes and boards; 5 s (bun's default) is too short.
const proc = Bun.spawn([process.execPath, "test", "--timeout", "60000", ...paths], { cwd: root, stdout: "pipe", stderr: "pipe", env: process.env });
let tail = "";
const relay = async (stream: ReadableStream<Uint8Array>, out: NodeJS.WriteStream) => {
  const decoder = new TextDecoder();
  for await (const chunk of stream) {
    const text = decoder.decode(chunk, { stream: true });
    tail = (tail + text).slice(-4000);
    out.write(text);
  }
};
await Promise.all([relay(proc.stdout, process.stdout), relay(proc.stderr, process.stderr)]);
const code = await proc.exited;
const count = (word: string) => Number(new RegExp(`^\\s*(\\d+) ${word}$`, "m").exec(tail)?.[1] ?? 0);
const passed = count("pass");
const failed = count("fail") + (code !== 0 && count("fail") === 0 ? 1 : 0);
const skipped = count("skip");
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
process.exit(code);
