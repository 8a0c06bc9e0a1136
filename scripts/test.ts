/**
 * `npm test`: builds dist/jmp (end-to-end tests run it as users do), runs every
 * test beside the code and in test/, and ends with one line `N passed, N failed`.
 * Extra arguments go to `bun test` (e.g. a path filter).
 */
import { join } from "node:path";

/**
 * The lines bun printed for each failed test: those since the previous test's result
 * line (its logs and the error with its source excerpt), the last MAX_LINES of them
 * (CI shows little more than a hundred lines of a run).
 */
class FailureLog {
  private static readonly MAX_LINES = 30;
  /** Each stream's unfinished last line (bun writes results to stderr, tests' logs to stdout). */
  private readonly partial = new Map<object, string>();
  private since: string[] = [];
  private readonly failed: string[][] = [];

  take(from: object, text: string): void {
    const lines = ((this.partial.get(from) ?? "") + text).split("\n");
    this.partial.set(from, lines.pop()!);
    for (const line of lines) {
      if (/^\((pass|skip|todo)\) /.test(line) || /^\S.*\.test\.ts:$/.test(line)) this.since = [];
      else if (line.startsWith("(fail) ")) {
        this.failed.push([...this.since.slice(-FailureLog.MAX_LINES), line]);
        this.since = [];
      } else this.since.push(line);
    }
  }

  report(): string {
    return this.failed.map((lines) => lines.join("\n").trim()).join("\n\n");
  }
}

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
const failures = new FailureLog();
const relay = async (stream: ReadableStream<Uint8Array>, out: NodeJS.WriteStream) => {
  const decoder = new TextDecoder();
  for await (const chunk of stream) {
    const text = decoder.decode(chunk, { stream: true });
    tail = (tail + text).slice(-4000);
    failures.take(stream, text);
    out.write(text);
  }
};
await Promise.all([relay(proc.stdout, process.stdout), relay(proc.stderr, process.stderr)]);
const code = await proc.exited;
// CI keeps only the end of a run's output: each failure's own lines again, just above
// the summary, so a red run says why without its whole log.
const again = failures.report();
if (again) process.stdout.write(`\n--- the failed tests' output, again\n${again}\n`);
const count = (word: string) => Number(new RegExp(`^\\s*(\\d+) ${word}$`, "m").exec(tail)?.[1] ?? 0);
const passed = count("pass");
const failed = count("fail") + (code !== 0 && count("fail") === 0 ? 1 : 0);
const skipped = count("skip");
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
process.exit(code);

