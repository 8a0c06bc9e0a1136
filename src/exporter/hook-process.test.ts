/**
 * A hook's program on a pseudo-terminal, in a process group of its own: what it
 * sees (a terminal), what we read (lines, readable whatever it prints), and how it
 * ends (its leftovers, its timeout, a group that ignores SIGTERM).
 */
import { afterAll, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { tempDir } from "../../test/helpers.ts";
import { groupMembers, readable, runHookProcess } from "./hook-process.ts";

const dir = tempDir("jmp-hookproc-");
afterAll(() => dir.remove());

function run(script: string, timeoutMs = 10_000) {
  const lines: { at: number; text: string }[] = [];
  const t0 = performance.now();
  const done = runHookProcess({
    argv: ["/bin/sh", "-c", script],
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", TERM: "dumb" },
    timeoutMs,
    onLine: (text) => lines.push({ at: performance.now() - t0, text }),
  });
  return { lines, done };
}

/** Whether a process still runs (not a zombie). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    return !/^[ZX]$/.test(stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3));
  } catch {
    return false;
  }
}

test("the hook gets a terminal on stdin, stdout and stderr, and its own session and process group", async () => {
  const { lines, done } = run('[ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo "all three are a tty"; tty; ps -o pid=,pgid=,sid= -p $$; echo err >&2');
  const r = await done;
  expect(r).toMatchObject({ code: 0, timedOut: false, leftovers: false });
  const text = lines.map((l) => l.text);
  expect(text[0]).toBe("all three are a tty");
  expect(text[1]).toMatch(/^\/dev\/pts\/\d+$/);
  const [pid, pgid, sid] = text[2]!.trim().split(/\s+/).map(Number);
  expect(pgid).toBe(pid!);
  expect(sid).toBe(pid!);
  expect(text[3]).toBe("err");
});

test("on a terminal a program writes each line as it comes: they arrive live, not at the exit", async () => {
  // Python buffers a pipe in blocks and a terminal by line: a pipe would deliver all three at the exit.
  const { lines, done } = run('python3 -c "import time\nfor i in range(3):\n    print(i)\n    time.sleep(0.3)"');
  await done;
  expect(lines.map((l) => l.text)).toEqual(["0", "1", "2"]);
  expect(lines[2]!.at - lines[0]!.at).toBeGreaterThan(450);
});

test("binary junk, colours and carriage returns come out as readable lines", async () => {
  const { lines, done } = run('head -c 5000 /dev/urandom; printf "\\n\\033[31mred\\033[0m text\\n50%%\\r100%% done\\r\\nbell\\a and nul\\000 here\\n"; echo end');
  const r = await done;
  expect(r.code).toBe(0);
  const text = lines.map((l) => l.text);
  expect(text.slice(-4)).toEqual(["red text", "100% done", "bell\uFFFD and nul\uFFFD here", "end"]);
  for (const line of text) {
    expect(line).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f]/);
    expect(line.length).toBeLessThanOrEqual(2000 + 40);
  }
});

test("readable: escapes gone, what a terminal shows after \\r, controls replaced, long lines cut", () => {
  expect(readable("\x1b[1;32mok\x1b[0m\r")).toBe("ok");
  expect(readable("\x1b]0;title\x07text")).toBe("text");
  expect(readable("10%\r20%\r30%")).toBe("30%");
  expect(readable("a\x00b\x7fc")).toBe("a\uFFFDb\uFFFDc");
  expect(readable("x".repeat(2100))).toBe(`${"x".repeat(2000)}… (100 more characters)`);
});

test("what the hook leaves running in its group is ended when it exits", async () => {
  const pidFile = `${dir.path}/leftover.pid`;
  const { done } = run(`sleep 300 & echo $! > ${pidFile}; echo started`);
  const r = await done;
  expect(r).toMatchObject({ code: 0, leftovers: true });
  expect(alive(Number(readFileSync(pidFile, "utf8")))).toBe(false);
});

test("at the timeout the whole group goes, children that ignore SIGTERM included (SIGKILL after the grace)", async () => {
  const pidFile = `${dir.path}/stubborn.pid`;
  const t0 = performance.now();
  const { lines, done } = run(`sh -c "trap '' TERM; echo \\$\\$ > ${pidFile}; while :; do sleep 1; done" & trap '' TERM; echo started; sleep 300`, 1000);
  const r = await done;
  const ms = performance.now() - t0;
  expect(r).toMatchObject({ timedOut: true, code: null, signal: "SIGKILL" });
  expect(lines.map((l) => l.text)).toContain("started");
  // The timeout, then the grace for SIGTERM (which nothing heeds), then SIGKILL.
  expect(ms).toBeGreaterThan(1000 + 5000 - 200);
  expect(ms).toBeLessThan(1000 + 5000 + 2500);
  expect(existsSync(pidFile)).toBe(true);
  expect(alive(Number(readFileSync(pidFile, "utf8")))).toBe(false);
  expect(groupMembers(Number(readFileSync(pidFile, "utf8")))).toEqual([]);
}, 15_000);

test("a program that does not exist fails to start with its name", async () => {
  const e = await runHookProcess({ argv: ["/nonexistent/interpreter"], env: {}, timeoutMs: 1000, onLine: () => {} }).catch((e: Error) => e);
  expect(e).toBeInstanceOf(Error);
  expect((e as Error).message).toContain("/nonexistent/interpreter");
});
