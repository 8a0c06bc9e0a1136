/** Running the built executable as a user would, from end-to-end tests. */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const ROOT = join(import.meta.dir, "..");
export const JMP = join(ROOT, "dist/jmp");
export const J = join(ROOT, "dist/j");

export interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs dist/jmp to completion (with a time limit so a hang fails the test, not CI). */
export async function jmp(args: string[], opts: { env?: Record<string, string>; stdin?: string; timeoutMs?: number; exe?: string } = {}): Promise<Result> {
  const proc = Bun.spawn([opts.exe ?? JMP, ...args], {
    env: { ...process.env, NO_COLOR: "1", ...opts.env },
    stdin: opts.stdin === undefined ? "ignore" : new TextEncoder().encode(opts.stdin),
    stdout: "pipe",
    stderr: "pipe",
  });
  const timer = setTimeout(() => proc.kill("SIGKILL"), opts.timeoutMs ?? 20_000);
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  return { code, stdout, stderr };
}

export function tempDir(prefix = "jmp-test-"): { path: string; file(name: string, text: string): string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return {
    path,
    file(name, text) {
      const f = join(path, name);
      writeFileSync(f, text);
      return f;
    },
    remove: () => rmSync(path, { recursive: true, force: true }),
  };
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Polls until fn returns a value (not undefined) or the time is up. */
export async function waitFor<T>(fn: () => T | undefined | Promise<T | undefined>, what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch {}
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(50);
  }
}
