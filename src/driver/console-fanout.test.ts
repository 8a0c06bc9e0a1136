import { describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { ConsoleFanout } from "./console-fanout.ts";

/** A device: what the test pushes comes out of its readable; what is written to it is recorded. */
function device() {
  let out!: ReadableStreamDefaultController<Uint8Array>;
  const typed: string[] = [];
  const readable = new ReadableStream<Uint8Array>({ start: (c) => void (out = c) });
  const writable = new WritableStream<Uint8Array>({ write: (c) => void typed.push(new TextDecoder().decode(c)) });
  return { stream: { readable, writable }, print: (s: string | Uint8Array) => out.enqueue(typeof s === "string" ? new TextEncoder().encode(s) : s), end: () => out.close(), typed };
}

async function readAll(stream: ReadableStream<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const c of stream) parts.push(c);
  return Buffer.concat(parts);
}

const tick = () => new Promise((r) => setTimeout(r, 5));

describe("ConsoleFanout", () => {
  test("two readers get identical bytes; output printed while nobody read goes to the first; the recorder sees all", async () => {
    const d = device();
    const recorded: Uint8Array[] = [];
    const f = new ConsoleFanout(d.stream, { onOutput: (b) => recorded.push(b) });
    d.print("boot log\n");
    await tick();
    const a = f.attach();
    const b = f.attach();
    const reading = [readAll(a.readable), readAll(b.readable)];
    const random = new Uint8Array(256 * 1024);
    crypto.getRandomValues(random.subarray(0, 65536));
    for (let i = 0; i < 64; i++) d.print(random.subarray(i * 4096, (i + 1) * 4096));
    d.end();
    const [ga, gb] = await Promise.all(reading);
    const digest = (x: Uint8Array) => createHash("sha256").update(x).digest("hex");
    expect(digest(gb!)).toBe(digest(random));
    // The first attached also got what was printed before anyone read.
    expect(digest(ga!)).toBe(digest(Buffer.concat([Buffer.from("boot log\n"), random])));
    expect(Buffer.concat(recorded).length).toBe(9 + random.length);
  });

  test("one connection types at a time; the others are read-only until it closes its input or stops typing", async () => {
    const d = device();
    const f = new ConsoleFanout(d.stream, { inputIdleMs: 200 });
    const a = f.attach().writable.getWriter();
    const b = f.attach().writable.getWriter();
    await a.write(new TextEncoder().encode("ls\n"));
    await expect(b.write(new TextEncoder().encode("rm\n"))).rejects.toThrow(/another connection is typing on this console/);
    await a.close();
    const c = f.attach().writable.getWriter();
    await c.write(new TextEncoder().encode("uname\n"));
    // A refused write ends that connection's input (b's is errored now); a fresh one is refused too while c types.
    const e = f.attach().writable.getWriter();
    await expect(e.write(new TextEncoder().encode("rm\n"))).rejects.toThrow(/read-only/);
    // c stops typing: after the idle time, the next to type takes the input.
    const d2 = f.attach().writable.getWriter();
    await Bun.sleep(250);
    await d2.write(new TextEncoder().encode("date\n"));
    expect(d.typed).toEqual(["ls\n", "uname\n", "date\n"]);
  });

  test("a connection attached with take gets the input at once; the one that had it is told, stays read-only, and keeps reading", async () => {
    const d = device();
    const f = new ConsoleFanout(d.stream, { inputIdleMs: 50 });
    const a = f.attach();
    const aTold: string[] = [];
    a.notices!.listen((t) => aTold.push(t));
    const aw = a.writable.getWriter();
    await aw.write(new TextEncoder().encode("ls\n"));
    // Taken while a is typing (not idle): no waiting for a to stop.
    const b = f.attach({ take: true });
    expect(aTold).toEqual([expect.stringContaining("another connection took this console's input")]);
    const bTold: string[] = [];
    b.notices!.listen((t) => bTold.push(t));
    expect(bTold).toEqual([expect.stringContaining("took the console's input from another one")]);
    const bw = b.writable.getWriter();
    await bw.write(new TextEncoder().encode("whoami\n"));
    // a stays read-only, even once b has been idle for longer than inputIdleMs.
    await Bun.sleep(100);
    await expect(aw.write(new TextEncoder().encode("rm\n"))).rejects.toThrow(/read-only now/);
    const c = f.attach().writable.getWriter();
    await expect(c.write(new TextEncoder().encode("rm\n"))).rejects.toThrow(/another connection is typing/);
    await bw.write(new TextEncoder().encode("date\n"));
    // Both still read the console.
    const reading = [readAll(a.readable), readAll(b.readable)];
    d.print("root\n");
    d.end();
    expect((await Promise.all(reading)).map(String)).toEqual(["root\n", "root\n"]);
    expect(d.typed).toEqual(["ls\n", "whoami\n", "date\n"]);
  });

  test("a reader that falls too far behind is closed with a reason; the others go on", async () => {
    const d = device();
    const f = new ConsoleFanout(d.stream, { maxBehindBytes: 10_000 });
    const slow = f.attach().readable.getReader();
    const fast = f.attach();
    const got = readAll(fast.readable);
    for (let i = 0; i < 20; i++) d.print(new Uint8Array(1000));
    d.end();
    expect((await got).length).toBe(20_000);
    let error: unknown;
    try {
      for (;;) if ((await slow.read()).done) break;
    } catch (e) {
      error = e;
    }
    expect(String(error)).toContain("fell more than 10000 bytes behind");
  });
});
