import { expect, test } from "bun:test";
import { eventually } from "./eventually.ts";

test("returns the check's value once it stops throwing", async () => {
  let n = 0;
  const value = await eventually(() => {
    if (++n < 3) throw new Error("not yet");
    return n;
  }, { interval: 10 });
  expect(value).toBe(3);
});

test("gives up after the timeout with the last error", async () => {
  const started = performance.now();
  const error = await eventually(() => {
    throw new Error("the light is off");
  }, { timeout: 200, interval: 20 }).catch((e: Error) => e);
  expect((error as Error).message).toMatch(/still failing after 0\.2 s \(\d+ tries\): the light is off/);
  expect(performance.now() - started).toBeLessThan(1000);
});

test("rejects nonsense options", async () => {
  const error = await eventually(() => 1, { interval: 0 }).catch((e: Error) => e);
  expect(error).toBeInstanceOf(RangeError);
});
