/**
 * `jmp run`'s supervisor on the built binary: the worker it starts says it has
 * begun, so a failure of the worker's own (here a config mistake only the worker
 * finds) comes through as the worker said it, not as "could not start".
 * (A worker that cannot start at all is tested with real processes in
 * src/exporter/supervise.test.ts.)
 */
import { afterEach, expect, test } from "bun:test";
import { jmp, tempDir } from "./helpers.ts";

const dirs: ReturnType<typeof tempDir>[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) d.remove();
});

test("a worker that started and then fails on its config: its one line and exit 2 come through, nothing added", async () => {
  const dir = tempDir("jmp-supervisor-");
  dirs.push(dir);
  const config = dir.file("pi-1.yaml", `apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata: { namespace: default, name: pi-1 }
endpoint: 127.0.0.1:1
token: t
export:
  power: { type: MockPowr }
`);
  const r = await jmp(["run", "--exporter-config", config]);
  expect({ code: r.code, stderr: r.stderr.trim() }).toEqual({
    code: 2,
    stderr: `Error: ${config}: export.power.type: unknown driver type 'MockPowr'; did you mean 'MockPower'?`,
  });
});
