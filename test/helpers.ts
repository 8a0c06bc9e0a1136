/** Running the built executable as a user would, from end-to-end tests. */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect, createServer } from "node:net";
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

/**
 * Resolves once something accepts TCP connections on host:port, and rejects when
 * nothing does: a check for eventually(), e.g. until a `jmp run` listens.
 */
export function tcpAccepts(port: number, host = "127.0.0.1"): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host });
    socket.once("connect", () => {
      socket.destroy();
      resolve();
    });
    socket.once("error", (e) => reject(new Error(`nothing accepts on ${host}:${port} (${e.message})`)));
  });
}

/**
 * Aborts when the process exits, with an error saying so and what it printed: give it
 * to eventually() so that a wait for a process that died fails at once.
 */
export function whileRunning(proc: { exited: Promise<number> }, what: string, output: () => string = () => ""): AbortSignal {
  const abort = new AbortController();
  void proc.exited.then((code) => abort.abort(new Error(`${what} exited with ${code}; its output:\n${output()}`)));
  return abort.signal;
}
