/** The README's first command: `jmp demo` must keep working, in both of its forms. */
import { expect, test } from "bun:test";
import { jmp } from "./helpers.ts";

test("jmp demo tours a shared lab on one machine: controller, exporter, lease, board", async () => {
  const r = await jmp(["demo"], { timeoutMs: 60_000 });
  expect(r.stderr).not.toContain("Error");
  expect(r.code).toBe(0);
  expect(r.stdout).toContain("registered as default/demo-board");
  expect(r.stdout).toContain("Linux demo-board");
  expect(r.stdout).toMatch(/Ended \(Released\)/);
}, 70_000);

test("jmp demo --local does the same without a controller", async () => {
  const r = await jmp(["demo", "--local"], { timeoutMs: 30_000 });
  expect(r.code).toBe(0);
  expect(r.stdout).toContain("demo-board login:");
  expect(r.stdout).toContain("voltage=5.1 V");
});
