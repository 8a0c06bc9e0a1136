/**
 * Private temporary directories (mode 0700) that do not pile up: each name
 * carries the pid of the process that made it, and making one first removes
 * those of the same kind whose process is gone — a `jmp shell` killed outright
 * (SIGKILL, a closed laptop that never came back) cannot clean up after itself.
 */
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { processAlive } from "./process-alive.ts";


/** Removes `<parent>/<prefix><pid>-*` directories of ours whose process has exited. */
export function removeStaleDirs(prefix: string, parent = tmpdir()): string[] {
  const removed: string[] = [];
  let names: string[];
  try {
    names = readdirSync(parent);
  } catch {
    return removed;
  }
  const uid = process.getuid?.();
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(/^(\d+)-/.exec(name.slice(prefix.length))?.[1]);
    if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid || processAlive(pid)) continue;
    const path = join(parent, name);
    try {
      // Only our own: another user's leftovers are theirs to clean.
      if (uid !== undefined && statSync(path).uid !== uid) continue;
      rmSync(path, { recursive: true, force: true });
      removed.push(path);
    } catch {
      // Gone meanwhile, or not ours to remove.
    }
  }
  return removed;
}

/** A new `<parent>/<prefix><pid>-XXXXXX` directory, mode 0700, after removing stale ones of the same prefix. */
export function makePrivateDir(prefix: string, parent = tmpdir()): string {
  removeStaleDirs(prefix, parent);
  return mkdtempSync(join(parent, `${prefix}${process.pid}-`));
}
