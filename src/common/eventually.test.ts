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
  expect((error as Error).message).toMatch(/^still failing after 0\.2 s \(\d+ tries\): the light is off$/);
  expect(performance.now() - started).toBeLessThan(1000);
});

test("names what it waited for when it gives up", async () => {
  const error = await eventually(() => expect(1).toBe(2), { timeout: 50, interval: 10, what: "the light to go on" }).catch((e: Error) => e);
  expect((error as Error).message).toStartWith("waiting for the light to go on: still failing after 0.1 s (");
  expect((error as Error).message).toContain("Expected: 2");
});

test("an abort stops it at once, between tries and during the pause, with the signal's reason", async () => {
  const abort = new AbortController();
  let tries = 0;
  const started = performance.now();
  const waiting = eventually(() => {
    tries++;
    throw new Error("not yet");
  }, { timeout: 10_000, interval: 5_000, signal: abort.signal }).catch((e: Error) => e);
  abort.abort(new Error("the exporter exited with 1"));
  expect(((await waiting) as Error).message).toBe("the exporter exited with 1");
  expect(tries).toBe(1);
  expect(performance.now() - started).toBeLessThan(1000);
  const before = await eventually(() => 1, { signal: AbortSignal.abort(new Error("gone already")) }).catch((e: Error) => e);
  expect((before as Error).message).toBe("gone already");
});

test("a check may abort the wait itself, when what it sees can no longer turn out well", async () => {
  const hopeless = new AbortController();
  const started = performance.now();
  const error = await eventually(() => {
    hopeless.abort(new Error("the lease ended instead"));
    throw new Error("not Ready");
  }, { interval: 5_000, signal: hopeless.signal }).catch((e: Error) => e);
  expect((error as Error).message).toBe("the lease ended instead");
  expect(performance.now() - started).toBeLessThan(1000);
});

test("rejects nonsense options", async () => {
  const error = await eventually(() => 1, { interval: 0 }).catch((e: Error) => e);
  expect(error).toBeInstanceOf(RangeError);
});
