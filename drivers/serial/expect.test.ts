import { expect, test } from "bun:test";
import { DeadlineExceededError, InvalidArgumentError, UnavailableError } from "@jumpstarter/driver";
import { compilePattern, ExpectBuffer, Expecter, unescapeText } from "./expect.ts";

const bytes = (s: string) => new TextEncoder().encode(s);
const failureOf = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e);

/** A console whose output the test writes, chunk by chunk. */
function fakeConsole() {
  const pipe = new TransformStream<Uint8Array, Uint8Array>();
  const writer = pipe.writable.getWriter();
  return {
    readable: pipe.readable,
    say: (s: string | Uint8Array) => void writer.write(typeof s === "string" ? bytes(s) : s),
    hangUp: () => void writer.close(),
  };
}

test("a match consumes the text through its end; the next expect sees only what follows", () => {
  const b = new ExpectBuffer();
  b.push(bytes("U-Boot 2024.01\r\nHit any key to stop autoboot: 3 "));
  const m = b.match(["autoboot"]);
  expect(m).toEqual({ index: 0, text: "autoboot", before: "U-Boot 2024.01\r\nHit any key to stop ", groups: [] });
  expect(b.match(["U-Boot"])).toBeUndefined();
  expect(b.match([": 3"])?.before).toBe("");
});

test("with several patterns the earliest in the text wins, ties going to the first listed", () => {
  const b = new ExpectBuffer();
  b.push(bytes("error: disk not found\nlogin: "));
  expect(b.match(["login:", /error: (\w+)/])).toEqual({ index: 1, text: "error: disk", before: "", groups: ["disk"] });
  b.push(bytes(" ok"));
  expect(b.match(["ok", /o(k)/])?.index).toBe(0);
});

test("regex flags g and y do not make matching depend on earlier calls", () => {
  const b = new ExpectBuffer();
  const prompt = /[$#] $/gy;
  b.push(bytes("root@board:~# "));
  expect(b.match([prompt])?.text).toBe("# ");
  b.push(bytes("ls\r\nroot@board:~# "));
  expect(b.match([prompt])?.before).toBe("ls\r\nroot@board:~");
});

test("a character split across chunks is decoded whole, and invalid bytes do not stop matching", () => {
  const b = new ExpectBuffer();
  const euro = bytes("€");
  b.push(new Uint8Array([0xff, ...euro.subarray(0, 1)]));
  expect(b.match(["€"])).toBeUndefined();
  b.push(euro.subarray(1));
  expect(b.match(["€"])?.before).toBe("\ufffd");
});

test("old unmatched text falls out of the window", () => {
  const b = new ExpectBuffer(16);
  b.push(bytes("needle"));
  b.push(bytes("x".repeat(20)));
  expect(b.match(["needle"])).toBeUndefined();
  b.push(bytes("needle"));
  expect(b.match(["needle"])).toBeDefined();
});

test("lastLines shows the end of what came, with control characters made visible", () => {
  const b = new ExpectBuffer();
  b.push(bytes("one\r\ntwo\nthree\x1b[0m\r\nfour\n"));
  expect(b.lastLines(3)).toEqual(["two", "three\\x1b[0m", "four"]);
  expect(new ExpectBuffer().lastLines(5)).toEqual([]);
});

test("Expecter waits across chunks and echoes every chunk as it arrives", async () => {
  const c = fakeConsole();
  const seen: string[] = [];
  const firstChunk = Promise.withResolvers<void>();
  const e = new Expecter(c.readable, {
    onData: (b) => {
      seen.push(new TextDecoder().decode(b));
      firstChunk.resolve();
    },
  });
  const waiting = e.expect("login:", 2000);
  c.say("board lo");
  // The rest comes once the first chunk has been taken in, as two reads from a device would.
  await firstChunk.promise;
  c.say("gin: ");
  expect((await waiting).before).toBe("board ");
  expect(seen).toEqual(["board lo", "gin: "]);
  await e.close();
});

test("a timeout names the pattern and quotes the last lines; data arriving later is not lost", async () => {
  const c = fakeConsole();
  const e = new Expecter(c.readable);
  c.say("Starting kernel ...\r\n[    0.000000] Booting Linux\r\n");
  const started = performance.now();
  const err = await failureOf(e.expect(["login:", /\$ $/], 300));
  expect(performance.now() - started).toBeGreaterThanOrEqual(290);
  expect(err).toBeInstanceOf(DeadlineExceededError);
  expect((err as Error).message).toBe(
    'timed out after 0.3 s waiting for "login:" or /\\$ $/; the last lines received were:\n' +
      "  | Starting kernel ...\n  | [    0.000000] Booting Linux",
  );
  c.say("login: ");
  expect((await e.expect("login:", 1000)).before).toBe("Starting kernel ...\r\n[    0.000000] Booting Linux\r\n");
  await e.close();
});

test("a timeout with nothing received says so", async () => {
  const e = new Expecter(fakeConsole().readable);
  expect(String(await failureOf(e.expect("x", 50)))).toContain('waiting for "x"; nothing was received');
});

test("the stream ending first is an UnavailableError with the last lines", async () => {
  const c = fakeConsole();
  const e = new Expecter(c.readable);
  c.say("Kernel panic - not syncing\n");
  c.hangUp();
  const err = await failureOf(e.expect("login:", 2000));
  expect(err).toBeInstanceOf(UnavailableError);
  expect((err as Error).message).toBe('the stream ended before "login:" appeared; the last lines received were:\n  | Kernel panic - not syncing');
});

test("expect needs a pattern", async () => {
  expect(await failureOf(new Expecter(fakeConsole().readable).expect([], 10))).toBeInstanceOf(InvalidArgumentError);
});

test("unescapeText turns escapes into bytes; \\xHH is one raw byte", () => {
  expect(unescapeText("root\\n")).toEqual(bytes("root\n"));
  expect(unescapeText("a\\r\\n\\t\\e[A\\\\")).toEqual(bytes("a\r\n\t\x1b[A\\"));
  expect(unescapeText("\\x03\\xff é")).toEqual(new Uint8Array([3, 0xff, 0x20, 0xc3, 0xa9]));
  expect(() => unescapeText("bad\\q")).toThrow("unknown escape '\\q' (known: \\n \\r \\t \\e \\\\ \\xHH)");
  expect(() => unescapeText("trailing\\")).toThrow("unknown escape '\\'");
});

test("compilePattern reports a bad regular expression clearly", () => {
  expect(compilePattern("^login: ?$").test("login: ")).toBe(true);
  expect(() => compilePattern("(unclosed")).toThrow(InvalidArgumentError);
  expect(() => compilePattern("(unclosed")).toThrow("invalid regular expression '(unclosed'");
});
