/**
 * `--log-format json` on the controller (with its embedded router) and the exporter:
 * one lease followed across both by its keys, as a log search would.
 */
import { afterAll, expect, test } from "bun:test";
import { eventually } from "../src/api/eventually.ts";
import { Lab, type Proc } from "./distributed/lab.ts";

const labs: Lab[] = [];
afterAll(async () => {
  await Promise.all(labs.map((l) => l.close()));
}, 30_000);

type Line = Record<string, string>;

/** Every stderr line of `p` as JSON; a line that is not JSON fails the test. */
function jsonLines(text: string): Line[] {
  return text.split("\n").filter((l) => l.trim() !== "").map((l) => {
    try {
      return JSON.parse(l) as Line;
    } catch {
      throw new Error(`not a JSON log line: ${l}`);
    }
  });
}

const stderrOf = (p: Proc) => p.output;

test("a lease's lines carry its lease, client and exporter keys on every role", async () => {
  const lab = await Lab.start({ controllerArgs: ["--log-format", "json"] });
  labs.push(lab);
  await lab.addExporter("sim-1", { board: "sim" });
  await lab.addClient("alice");
  const exporter = await lab.runExporter("sim-1", ["--log-format", "json"]);
  const shell = await lab.jmp(["shell", "-l", "board=sim", "--client", "alice", "--", "j", "power", "on"]);
  expect(shell.code).toBe(0);

  const controller = await eventually(() => {
    const lines = jsonLines(stderrOf(lab.controller));
    if (!lines.some((l) => /ended/.test(l.message ?? "") && l.lease)) throw new Error("the controller has not logged the lease's end yet");
    return lines;
  }, { what: "the controller's lease lines", timeout: 10_000, interval: 50 });
  const requested = controller.find((l) => /requested by alice/.test(l.message ?? ""))!;
  expect(requested).toMatchObject({ level: "info", logger: "controller", namespace: "default", client: "alice" });
  const lease = requested.lease!;
  expect(lease).toMatch(/\S/);
  expect(controller.find((l) => l.lease === lease && /holds exporter sim-1/.test(l.message ?? ""))).toMatchObject({ client: "alice", exporter: "sim-1" });
  expect(controller.find((l) => l.lease === lease && /ended \(Released\)/.test(l.message ?? ""))).toMatchObject({ client: "alice", exporter: "sim-1" });
  // The embedded router pairs the shell's stream under the same lease.
  expect(controller.find((l) => l.lease === lease && /paired/.test(l.message ?? ""))).toMatchObject({ logger: "router", namespace: "default" });

  const exporterLines = await eventually(() => {
    const lines = jsonLines(stderrOf(exporter));
    if (!lines.some((l) => l.lease === lease && /ended/.test(l.message ?? ""))) throw new Error("the exporter has not logged the lease's end yet");
    return lines;
  }, { what: "the exporter's lease lines", timeout: 10_000, interval: 50 });
  expect(exporterLines.find((l) => l.lease === lease && /ready/.test(l.message ?? ""))).toMatchObject({ exporter: "sim-1", client: "alice", namespace: "default" });
  // Every line of the exporter says which exporter wrote it.
  for (const l of exporterLines) expect(l.exporter, JSON.stringify(l)).toBe("sim-1");
}, 60_000);
