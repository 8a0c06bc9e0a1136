import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, utimesSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConsoleLogs, gapMarker, MAX_LEASES } from "./console-logs.ts";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), "jmp-console-logs-"));
  dirs.push(d);
  return d;
};
const text = (chunks: { data: Uint8Array }[]) => Buffer.concat(chunks.map((c) => c.data)).toString();

describe("ConsoleLogs", () => {
  test("keeps the newest keepBytes of a lease's driver, says how much went before, and reads it back from a new instance", () => {
    const dir = tmp();
    const logs = new ConsoleLogs(dir);
    let all = "";
    for (let i = 0; i < 100; i++) {
      const line = `line ${String(i).padStart(3, "0")}\n`;
      all += line;
      logs.append("default", "L1", "console", Buffer.from(line), 100);
    }
    const read = [...logs.read("default", "L1", "console", 30)];
    expect(text(read)).toBe(all.slice(-100));
    expect(read[0]!.skipped).toBe(all.length - 100);
    // The file never holds more than twice what is kept.
    expect(statSync(join(dir, "console", "default", "L1", "console.log")).size).toBeLessThanOrEqual(200);
    // After a restart the kept part is still there (how much went before is not).
    expect(text([...new ConsoleLogs(dir).read("default", "L1", "console")]).endsWith(all.slice(-100))).toBe(true);
    expect(logs.drivers("default", "L1")).toEqual(["console"]);
  });

  test("output the exporter dropped is marked at its spot, with its size, for readers now and later", () => {
    const logs = new ConsoleLogs(tmp());
    const live: string[] = [];
    logs.watch("default", "L1", (e) => e.data && live.push(Buffer.from(e.data).toString()));
    logs.append("default", "L1", "console", Buffer.from("boot: ok\nloading"), 1000);
    logs.append("default", "L1", "console", Buffer.from("tail of it\n"), 1000, 1234567);
    const marker = "\r\n[jmp: 1234567 bytes of console output dropped here]\r\n";
    expect(Buffer.from(gapMarker(1234567)).toString()).toBe(marker);
    expect(text([...logs.read("default", "L1", "console")])).toBe(`boot: ok\nloading${marker}tail of it\n`);
    expect(live).toEqual(["boot: ok\nloading", `${marker}tail of it\n`]);
  });

  test("tells watchers of appends and ends; allDone once every driver ended", () => {
    const logs = new ConsoleLogs(tmp());
    const seen: string[] = [];
    const stop = logs.watch("default", "L1", (e) => seen.push(e.done ? `${e.driver} done` : `${e.driver}: ${Buffer.from(e.data!).toString()}`));
    logs.append("default", "L1", "a", Buffer.from("x"), 0);
    logs.append("default", "L1", "b", Buffer.from("y"), 0);
    logs.done("default", "L1", "a");
    expect(logs.allDone("default", "L1")).toBe(false);
    logs.done("default", "L1", "b");
    expect(logs.allDone("default", "L1")).toBe(true);
    stop();
    logs.append("default", "L1", "a", Buffer.from("z"), 0);
    expect(seen).toEqual(["a: x", "b: y", "a done", "b done"]);
  });

  test("refuses driver names that are not plain file names", () => {
    for (const bad of ["../x", "a/b", "", ".hidden", "x".repeat(200)]) expect(ConsoleLogs.checkDriver(bad)).toContain("driver name");
    expect(ConsoleLogs.checkDriver("dut.console")).toBeUndefined();
  });

  test(`keeps the newest ${MAX_LEASES} lease folders of a namespace`, () => {
    const dir = tmp();
    const ns = join(dir, "console", "default");
    mkdirSync(ns, { recursive: true });
    const old = Date.now() / 1000 - 3600;
    for (let i = 0; i < MAX_LEASES; i++) {
      mkdirSync(join(ns, `old-${i}`));
      utimesSync(join(ns, `old-${i}`), old + i, old + i);
    }
    new ConsoleLogs(dir).append("default", "new", "console", Buffer.from("x"), 0);
    const left = readdirSync(ns);
    expect(left).toHaveLength(MAX_LEASES);
    expect(left).toContain("new");
    expect(left).not.toContain("old-0");
  });
});
