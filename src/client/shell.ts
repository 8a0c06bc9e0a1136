/**
 * Running the user's shell (or a command) attached to a session: the child gets
 * `JUMPSTARTER_HOST` and finds `j` on its PATH even when only `jmp` is installed.
 */
import { rmSync } from "node:fs";
import { constants } from "node:os";
import { basename } from "node:path";
import { makeJCommandDir } from "../common/self.ts";

export interface ShellOptions {
  /** What `JUMPSTARTER_HOST` points at. */
  host: string;
  /** The command and its arguments; the user's `$SHELL` when empty. */
  command: string[];
  /** Extra environment for the child (JMP_LEASE, JMP_GRPC_PASSPHRASE, …). */
  env?: Record<string, string>;
  /** Shown in the prompt of an interactive shell. */
  name?: string;
  /** Called with the child once it runs (e.g. to signal it when the lease ends). */
  onStart?: (child: { kill(signal: NodeJS.Signals): void }) => void;
}

/** Runs the shell; resolves to its exit code (128 + signal number when killed). */
export async function runShell(opts: ShellOptions): Promise<number> {
  const jDir = makeJCommandDir();
  const interactive = opts.command.length === 0;
  const shell = process.env.SHELL || "/bin/sh";
  const argv = interactive ? [shell] : opts.command;
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    ...opts.env,
    JUMPSTARTER_HOST: opts.host,
    PATH: `${jDir}:${process.env.PATH ?? "/usr/bin:/bin"}`,
  };
  if (interactive && opts.name && ["sh", "bash", "dash", "ash"].includes(basename(shell))) {
    env.PS1 = `⚡${opts.name} ➤ `;
  }
  let child: ReturnType<typeof Bun.spawn>;
  try {
    child = Bun.spawn(argv, { env, stdio: ["inherit", "inherit", "inherit"] });
  } catch (e) {
    rmSync(jDir, { recursive: true, force: true });
    throw new Error(`cannot start ${argv[0]}: ${(e as Error).message}`);
  }
  opts.onStart?.(child);
  // The child owns the terminal: Ctrl-C is for it; we pass on what is sent to us.
  const forward = (sig: NodeJS.Signals) => () => child.kill(sig);
  const handlers: [NodeJS.Signals, () => void][] = [
    ["SIGINT", () => {}],
    ["SIGTERM", forward("SIGTERM")],
    ["SIGHUP", forward("SIGHUP")],
  ];
  for (const [sig, h] of handlers) process.on(sig, h);
  try {
    const code = await child.exited;
    if (child.signalCode) return 128 + (signalNumber(String(child.signalCode)) ?? 0);
    return code;
  } finally {
    for (const [sig, h] of handlers) process.off(sig, h);
    rmSync(jDir, { recursive: true, force: true });
  }
}

function signalNumber(sig: string): number | undefined {
  const n = constants.signals[sig as NodeJS.Signals];
  return typeof n === "number" ? n : undefined;
}
