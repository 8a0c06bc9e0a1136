import { expect, test } from "bun:test";
import { leaseExpiresAt, leaseLabels, resolveTimes, updatedTimes } from "./lease-rules.ts";
import type { Lease } from "./model.ts";

const M = 60_000;

test.each([
  ["duration only", { duration: 5 * M }, { duration: 5 * M }],
  ["begin + duration", { beginTime: 100, duration: 5 * M }, { beginTime: 100, duration: 5 * M }],
  ["begin + end give the duration", { beginTime: 0, endTime: 5 * M }, { beginTime: 0, endTime: 5 * M, duration: 5 * M }],
  ["end + duration give the begin", { endTime: 10 * M, duration: 5 * M }, { beginTime: 5 * M, endTime: 10 * M, duration: 5 * M }],
  ["all three agreeing", { beginTime: 0, endTime: 5 * M, duration: 5 * M }, { beginTime: 0, endTime: 5 * M, duration: 5 * M }],
  ["a zero duration counts as unset", { beginTime: 0, endTime: 5 * M, duration: 0 }, { beginTime: 0, endTime: 5 * M, duration: 5 * M }],
])("resolveTimes: %s", (_label, input, expected) => {
  expect(resolveTimes(input)).toEqual({ beginTime: undefined, endTime: undefined, ...expected });
});

test("resolveTimes rejects non-finite times", () => {
  expect(() => resolveTimes({ duration: Number.NaN })).toThrow("duration must be a finite number, got NaN");
});

const lease = (extra: Partial<Lease>): Lease => ({
  namespace: "default",
  name: "l",
  client: "c",
  selector: "a=b",
  allowDisabled: false,
  tags: {},
  context: {},
  released: false,
  ended: false,
  conditions: [],
  createdAt: 0,
  seq: 1,
  ...extra,
});

test.each([
  [
    "a new duration on a running lease",
    { duration: 10 * M, effectiveBeginTime: 0, exporter: "e" },
    { duration: 60 * M },
    { duration: 60 * M },
  ],
  [
    "a new end on a running lease recomputes the duration from its effective begin",
    { duration: 10 * M, effectiveBeginTime: 2 * M, exporter: "e" },
    { endTime: 32 * M },
    { beginTime: 2 * M, endTime: 32 * M, duration: 30 * M },
  ],
  [
    "a new duration drops a requested end",
    { beginTime: 0, endTime: 10 * M, duration: 10 * M },
    { duration: 20 * M },
    { beginTime: 0, duration: 20 * M },
  ],
  [
    "a new begin keeps the duration and moves the end with it",
    { beginTime: 60 * M, endTime: 70 * M, duration: 10 * M },
    { beginTime: 30 * M },
    { beginTime: 30 * M, duration: 10 * M },
  ],
  [
    "a new end on a pending lease without begin finishes by then",
    { duration: 10 * M },
    { endTime: 100 * M },
    { beginTime: 90 * M, endTime: 100 * M, duration: 10 * M },
  ],
])("updatedTimes: %s", (_label, before, patch, expected) => {
  expect(updatedTimes(lease(before), patch)).toEqual({ beginTime: undefined, endTime: undefined, ...expected });
});

test("updatedTimes refuses to move the begin of a started lease, but accepts the same begin", () => {
  const started = lease({ beginTime: 0, duration: M, exporter: "e", effectiveBeginTime: 0 });
  expect(() => updatedTimes(started, { beginTime: 5 })).toThrow("cannot change the begin time of lease 'l': it has already started");
  expect(updatedTimes(started, { beginTime: 0 })).toEqual({ beginTime: 0, endTime: undefined, duration: M });
});

test("leaseExpiresAt: requested end, else requested or effective begin + duration", () => {
  expect(leaseExpiresAt({ endTime: 50, beginTime: 10, duration: 5 })).toBe(50);
  expect(leaseExpiresAt({ beginTime: 10, effectiveBeginTime: 20, duration: 5 })).toBe(15);
  expect(leaseExpiresAt({ effectiveBeginTime: 20, duration: 5 })).toBe(25);
  expect(leaseExpiresAt({ duration: 5 })).toBeUndefined();
});

test("leaseLabels are the selector's k=v pairs plus the tags under metadata.jumpstarter.dev/", () => {
  expect(leaseLabels(lease({ selector: "board=rpi4,rev!=1,x", tags: { ci: "yes" } }))).toEqual({
    board: "rpi4",
    "metadata.jumpstarter.dev/ci": "yes",
  });
});
