/**
 * Console capture end to end: the demo's simulated board (DutSim) boots during a
 * lease with no client attached to its console; `jmp lease logs` shows the boot log
 * while the lease runs and after it ended. Two `j console pipe` in one lease read
 * identical bytes; a third with --take takes the input from the one typing. A board printing faster than the exporter sends leaves marks
 * where output was dropped, each with the size of its gap.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { parse, stringify } from "yaml";
import { eventually } from "../src/api/eventually.ts";
import { DEMO_CONFIG } from "../src/cli/demo.ts";
import { Lab } from "./distributed/lab.ts";
import { JMP } from "./helpers.ts";

const labs: Lab[] = [];
afterAll(async () => {
  await Promise.all(labs.map((l) => l.close()));
}, 30_000);

async function simLab(): Promise<Lab> {
  const lab = await Lab.start();
  labs.push(lab);
  const file = await lab.addExporter("sim-1", { board: "sim" });
  const doc = parse(readFileSync(file, "utf8")) as Record<string, unknown>;
  doc.export = (parse(DEMO_CONFIG) as { export: unknown }).export;
  writeFileSync(file, stringify(doc));
  await lab.addClient("alice");
  await lab.runExporter("sim-1");
  return lab;
}

describe("console capture", () => {
  test("the board's boot log, printed with nobody on the console, is shown by jmp lease logs during and after the lease", async () => {
    const lab = await simLab();
    const lease = await lab.createLease("alice", "board=sim");
    // Power only: nothing connects to the console.
    await lab.ok(["shell", "--lease", lease.name, "--client", "alice", "--", "j", "power", "on"]);
    const during = await eventually(async () => {
      const out = await lab.ok(["lease", "logs", lease.name, "--client", "alice", "--driver", "console"]);
      if (!out.includes("login:")) throw new Error(`no login prompt yet in ${JSON.stringify(out.slice(-200))}`);
      return out;
    }, { what: "the boot log to reach the controller", timeout: 15_000, interval: 200 });
    expect(during).toContain("demo-board login:");

    await lab.ok(["lease", "delete", lease.name, "--client", "alice"]);
    await lab.doneWith("sim-1", lease.name);
    const after = await lab.ok(["lease", "logs", lease.name, "--client", "alice"]);
    expect(after).toContain(during);
    // -f on an ended lease prints what is kept and returns.
    const followed = await lab.jmp(["lease", "logs", lease.name, "--client", "alice", "-f"], { timeoutMs: 20_000 });
    expect(followed.code).toBe(0);
    expect(followed.stdout).toContain("demo-board login:");
    // Another client's lease is not found for bob; an unknown driver is one clear line.
    await lab.addClient("bob");
    const bob = await lab.jmp(["lease", "logs", lease.name, "--client", "bob"]);
    expect(bob.code).toBe(1);
    expect(bob.stderr).toContain("not found");
    const none = await lab.jmp(["lease", "logs", lease.name, "--client", "alice", "--driver", "nosuch"]);
    expect(none.code).toBe(1);
    expect(none.stderr.trim().split("\n")).toHaveLength(1);
    expect(none.stderr).toContain("no captured output of driver 'nosuch'");
  }, 90_000);

  test("-f follows the lease until it ends; two console readers in one lease see identical bytes", async () => {
    const lab = await simLab();
    const lease = await lab.createLease("alice", "board=sim");
    const follower = lab.spawn("jmp lease logs -f", ["lease", "logs", lease.name, "--client", "alice", "--driver", "console", "-f"]);
    // Two readers of the console at once, and the board printing while they read.
    const script = [
      "j power on",
      "j console expect 'login:' --timeout 15 >/dev/null",
      "{ j console pipe < /dev/null > a.out 2>/dev/null & j console pipe < /dev/null > b.out 2>/dev/null & sleep 1; }",
      "j console expect '# ' --send 'root\\r' --timeout 10 >/dev/null",
      "j console expect '# ' --send 'uname -a\\r' --timeout 10 >/dev/null",
      "sleep 0.5",
    ].join(" && ");
    const dir = lab.dir.path;
    await lab.ok(["shell", "--lease", lease.name, "--client", "alice", "--", "sh", "-c", `cd ${dir} && ${script}`]);
    const a = readFileSync(`${dir}/a.out`);
    const b = readFileSync(`${dir}/b.out`);
    expect(a.toString()).toContain("Linux demo-board");
    expect(a.length).toBeGreaterThan(50);
    const digest = (x: Buffer) => createHash("sha256").update(x).digest("hex");
    // Each pipe may have started a few bytes apart: compare from the first byte both have.
    expect(Math.abs(a.length - b.length)).toBeLessThan(64);
    const start = Math.max(0, a.length - b.length), startB = Math.max(0, b.length - a.length);
    expect(digest(a.subarray(start))).toBe(digest(b.subarray(startB)));

    await lab.ok(["lease", "delete", lease.name, "--client", "alice"]);
    expect(await follower.exited(20_000)).toBe(0);
    expect(follower.output).toContain("demo-board login:");
    expect(follower.output).toContain("Linux demo-board");
  }, 90_000);

  test("j console pipe --take in a second client takes the input; the first is told on its stderr, is read-only from then on, and keeps reading; a third typing meanwhile is told it is read-only", async () => {
    const lab = await simLab();
    const lease = await lab.createLease("alice", "board=sim");
    await lab.ok(["shell", "--lease", lease.name, "--client", "alice", "--", "j", "power", "on"]);
    const a = consolePipe(lab, lease.name, []);
    try {
      await a.waitFor("stdout", "login:");
      a.type("root\r");
      await a.waitFor("stdout", "# ");
      const b = consolePipe(lab, lease.name, ["--take"]);
      try {
        // Told at once, not at a's next keystroke.
        await a.waitFor("stderr", "another connection took this console's input (--take): this one is read-only now");
        await b.waitFor("stderr", "took the console's input from another one");
        a.type("echo AAA1\r");
        b.type("echo BBB2\r");
        // a still reads: it sees b's command and its output; a's own never reached the board.
        await b.waitFor("stdout", "BBB2\r\nBBB2");
        await a.waitFor("stdout", "BBB2\r\nBBB2");
        // A third, without --take, typing while b holds the input: told it is read-only.
        const c = consolePipe(lab, lease.name, []);
        try {
          c.type("echo CCC3\r");
          await c.waitFor("stderr", "another connection is typing on this console: this one is read-only now");
        } finally {
          c.stop();
        }
        b.type("echo BBB4\r");
        await a.waitFor("stdout", "BBB4\r\nBBB4");
        expect(a.stdout + b.stdout).not.toContain("AAA1");
        expect(a.stdout + b.stdout).not.toContain("CCC3");
      } finally {
        b.stop();
      }
    } finally {
      a.stop();
    }
    await lab.ok(["lease", "delete", lease.name, "--client", "alice"]);
  }, 90_000);

  test("a board printing faster than the exporter can send: the kept log marks each gap where it was, with the bytes dropped there", async () => {
    // The board prints numbered records, 16 bytes each (its offset, 15 digits, and a
    // newline), as fast as the exporter reads: any byte's place in the stream is known.
    const TOTAL = 48 * 2 ** 20;
    const server = await recordFlood(TOTAL);
    const lab = await Lab.start();
    labs.push(lab);
    try {
      const file = await lab.addExporter("flood", { board: "flood" });
      const doc = parse(readFileSync(file, "utf8")) as Record<string, unknown>;
      doc.export = { console: { type: "jumpstarter_driver_pyserial.driver.PySerial", config: { url: `socket://127.0.0.1:${(server.address() as { port: number }).port}` } } };
      doc.consoleCapture = { maxBytes: 2 ** 20 };
      writeFileSync(file, stringify(doc));
      await lab.addClient("alice");
      await lab.runExporter("flood");
      const lease = await lab.createLease("alice", "board=flood");
      // The end of the flood reaches the controller: the last record is kept.
      const last = String(TOTAL - 16).padStart(15, "0");
      const kept = await eventually(async () => {
        const out = await lab.ok(["lease", "logs", lease.name, "--client", "alice", "--driver", "console"]);
        if (!out.endsWith(`${last}\n`)) throw new Error(`the log ends with ${JSON.stringify(out.slice(-40))}`);
        return out;
      }, { what: "the flood's end in the kept log", timeout: 30_000, interval: 250 });

      const parts = kept.split(/\r\n\[jmp: (\d+) bytes of console output dropped here\]\r\n/);
      const gaps = parts.filter((_, i) => i % 2 === 1).map(Number);
      const segments = parts.filter((_, i) => i % 2 === 0);
      // 48 MiB in a second or two, sent at 4 MiB/s at most: most of it was dropped.
      expect(gaps.length).toBeGreaterThan(0);
      // Where each run of output between two marks began in the board's stream.
      const startOf = (seg: string) => {
        const k = seg.indexOf("\n") + 1;
        const record = seg.slice(k, k + 15);
        expect(record).toMatch(/^\d{15}$/);
        return Number(record) - k;
      };
      for (let i = 1; i < segments.length; i++) {
        const before = segments[i - 1]!, after = segments[i]!;
        // The mark's count is exactly the bytes missing between the two runs.
        expect(startOf(after) - (startOf(before) + before.length)).toBe(gaps[i - 1]!);
      }
      const lastSegment = segments.at(-1)!;
      expect(startOf(lastSegment) + lastSegment.length).toBe(TOTAL);
      await lab.ok(["lease", "delete", lease.name, "--client", "alice"]);
    } finally {
      server.close();
    }
  }, 90_000);
});

/** A TCP "board" printing `total` bytes of 16-byte numbered records to each connection, as fast as it is read. */
function recordFlood(total: number): Promise<Server> {
  const BLOCK = 64 * 1024;
  const server = createServer((s) => {
    s.on("error", () => {});
    let at = 0;
    const pump = () => {
      while (at < total && !s.destroyed) {
        const block = Buffer.alloc(BLOCK);
        for (let i = 0; i < BLOCK; i += 16) block.write(`${String(at + i).padStart(15, "0")}\n`, i, "latin1");
        at += BLOCK;
        if (!s.write(block)) return void s.once("drain", pump);
      }
    };
    pump();
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

/** `jmp shell --lease L -- j console pipe ARGS` with stdin piped (so what is typed goes to the console), its stdout and stderr kept apart. */
function consolePipe(lab: Lab, lease: string, args: string[]) {
  const proc = Bun.spawn([JMP, "shell", "--lease", lease, "--client", "alice", "--", "j", "console", "pipe", ...args], {
    env: { ...process.env, NO_COLOR: "1", ...lab.env },
    stdin: "pipe",
    stdout: "pipe",
    stderr: "pipe",
  });
  const got = { stdout: "", stderr: "" };
  const collect = async (which: "stdout" | "stderr") => {
    for await (const chunk of proc[which]) got[which] += new TextDecoder().decode(chunk);
  };
  void collect("stdout");
  void collect("stderr");
  return {
    get stdout() {
      return got.stdout;
    },
    type(text: string) {
      proc.stdin.write(text);
      proc.stdin.flush();
    },
    waitFor(which: "stdout" | "stderr", text: string) {
      return eventually(() => {
        if (!got[which].includes(text)) throw new Error(`no ${JSON.stringify(text)} on ${which} yet; stdout ${JSON.stringify(got.stdout.slice(-300))}, stderr ${JSON.stringify(got.stderr)}`);
      }, { what: `${JSON.stringify(text)} on the ${which} of j console pipe ${args.join(" ")}`, timeout: 20_000, interval: 50 });
    },
    stop() {
      proc.kill();
    },
  };
}

