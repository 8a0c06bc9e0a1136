/**
 * The client library as a test suite uses it: the example suite in local mode,
 * through `jmp shell -l`, and leasing by itself; and a suite that dies midway
 * still gives its board back.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { eventually } from "../src/api/eventually.ts";
import { jmp, ROOT } from "./helpers.ts";
import { Lab } from "./distributed/lab.ts";

const BUN = process.execPath;
const EXAMPLES = join(ROOT, "examples");
const simExport = (parse(readFileSync(join(EXAMPLES, "sim-board.yaml"), "utf8")) as { export: unknown }).export;

let lab: Lab;

beforeAll(async () => {
  lab = await Lab.start();
  await lab.addClient("ci");
  const file = await lab.addExporter("sim-1", { board: "sim" });
  const doc = parse(readFileSync(file, "utf8")) as Record<string, unknown>;
  doc.export = simExport;
  writeFileSync(file, stringify(doc));
  await lab.runExporter("sim-1");
});

afterAll(async () => lab?.close());

const bunTest = (args: string[], env: Record<string, string> = {}) =>
  Bun.spawn([BUN, "test", ...args], { cwd: ROOT, env: { ...process.env, ...lab.env, ...env }, stdout: "pipe", stderr: "pipe" });

async function finished(p: ReturnType<typeof bunTest>) {
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, text: out + err };
}

test("the example suite passes in local mode (jmp shell --exporter-config … -- bun test)", async () => {
  const r = await jmp(["shell", "--exporter-config", join(EXAMPLES, "sim-board.yaml"), "--", BUN, "test", EXAMPLES], { timeoutMs: 120_000 });
  expect(r.stdout + r.stderr).toContain(" 2 pass");
  expect(r.code).toBe(0);
}, 130_000);

test("the example suite passes inside a leased shell (jmp shell -l board=sim -- bun test)", async () => {
  const r = await lab.jmp(["shell", "-l", "board=sim", "--", BUN, "test", EXAMPLES], { timeoutMs: 120_000 });
  expect(r.stdout + r.stderr).toContain(" 2 pass");
  expect(r.code).toBe(0);
  expect(await lab.openLeases()).toEqual([]);
}, 130_000);

test("plain bun test leases the board itself with the current client and gives it back", async () => {
  const r = await finished(bunTest([EXAMPLES]));
  expect(r.text).toContain(" 2 pass");
  expect(r.code).toBe(0);
  expect(await lab.openLeases()).toEqual([]);
}, 130_000);

async function leaseThen(signal: NodeJS.Signals): Promise<{ lease: string; goneAfterMs: number }> {
  const child = Bun.spawn([BUN, join(import.meta.dir, "fixtures/lease-and-wait.ts")], { cwd: ROOT, env: { ...process.env, ...lab.env }, stdout: "pipe", stderr: "inherit" });
  const reader = child.stdout.getReader();
  let out = "";
  while (!/LEASED (\S+)/.test(out)) {
    const { done, value } = await reader.read();
    if (done) throw new Error(`the leasing script ended early: ${out}`);
    out += new TextDecoder().decode(value);
  }
  const lease = /LEASED (\S+)/.exec(out)![1]!;
  expect((await lab.openLeases()).map((l) => l.name)).toContain(lease);
  const killedAt = performance.now();
  child.kill(signal);
  await child.exited;
  await eventually(async () => expect((await lab.openLeases()).map((l) => l.name)).not.toContain(lease), { what: `lease ${lease} to end after ${signal}` });
  return { lease, goneAfterMs: Math.round(performance.now() - killedAt) };
}

test("a suite interrupted with SIGINT releases its lease before it exits", async () => {
  const { goneAfterMs } = await leaseThen("SIGINT");
  console.log(`lease released ${goneAfterMs} ms after SIGINT`);
  expect(goneAfterMs).toBeLessThan(10_000);
}, 40_000);

test("a suite killed with SIGKILL still loses its lease within seconds (the watchdog releases it)", async () => {
  const { goneAfterMs } = await leaseThen("SIGKILL");
  console.log(`lease released ${goneAfterMs} ms after SIGKILL`);
  expect(goneAfterMs).toBeLessThan(10_000);
}, 40_000);
