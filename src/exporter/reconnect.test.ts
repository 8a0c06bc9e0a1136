import { describe, expect, test } from "bun:test";
import { Backoff, formatDelay, sleep } from "./reconnect.ts";

const middle = () => 0.5;

describe("Backoff", () => {
  test("doubles from 0.5 s up to the 4 s cap, so a peer that returns is found within 5 s however long it was away", () => {
    const b = new Backoff({ random: middle });
    const delays = Array.from({ length: 10 }, () => b.next());
    expect(delays).toEqual([500, 1000, 2000, 4000, 4000, 4000, 4000, 4000, 4000, 4000]);
  });

  test("jitter moves each delay by at most a fifth either way", () => {
    const low = new Backoff({ random: () => 0 });
    const high = new Backoff({ random: () => 0.999999 });
    expect([low.next(), low.next(), low.next()]).toEqual([400, 800, 1600]);
    expect([high.next(), high.next(), high.next()]).toEqual([600, 1200, 2400]);
    // Never above the cap, even with jitter.
    for (let i = 0; i < 10; i++) high.next();
    expect(high.next()).toBe(4000);
  });

  test("real jitter spreads delays", () => {
    const seen = new Set(Array.from({ length: 20 }, () => new Backoff().next()));
    expect(seen.size).toBeGreaterThan(1);
    for (const d of seen) expect(d).toBeGreaterThanOrEqual(400);
  });

  test("a connection that stayed up for the stable period starts the schedule again", () => {
    let now = 0;
    const b = new Backoff({ random: middle, stableMs: 10_000, now: () => now });
    expect([b.next(), b.next(), b.next()]).toEqual([500, 1000, 2000]);
    b.connected();
    now += 9_999; // too short: the flapping connection keeps backing off
    expect(b.next()).toBe(4000);
    b.connected();
    now += 10_000;
    expect(b.next()).toBe(500);
  });

  test("reset forgets failures", () => {
    const b = new Backoff({ random: middle });
    b.next();
    b.next();
    b.reset();
    expect(b.next()).toBe(500);
  });
});

describe("sleep", () => {
  test("waits the full time", async () => {
    const t0 = performance.now();
    expect(await sleep(30)).toBe(true);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(25);
  });

  test("returns early when aborted", async () => {
    const abort = new AbortController();
    const t0 = performance.now();
    setTimeout(() => abort.abort(), 10);
    expect(await sleep(10_000, abort.signal)).toBe(false);
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(await sleep(10_000, abort.signal)).toBe(false);
  });
});

test("formatDelay", () => {
  expect(formatDelay(2345)).toBe("2.3s");
  expect(formatDelay(30000)).toBe("30.0s");
});
