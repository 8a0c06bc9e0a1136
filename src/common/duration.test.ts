import { describe, expect, test } from "bun:test";
import { formatDuration, parseDuration } from "./duration.ts";

describe("parseDuration", () => {
  test.each([
    ["90", 90_000],
    ["90s", 90_000],
    ["30m", 1_800_000],
    ["1h30m", 5_400_000],
    ["1d", 86_400_000],
    ["250ms", 250],
    ["PT1H", 3_600_000],
    ["PT1H30M", 5_400_000],
    ["P1DT2H", 93_600_000],
    ["01:30:00", 5_400_000],
    ["1:30", 90_000],
  ])("%s", (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  test.each(["", "abc", "1x", "PT", "P", "-5s", "1h 30m"])("rejects %p, naming the value", (text) => {
    expect(() => parseDuration(text, "--duration")).toThrow(`'--duration' must be a duration`);
  });
});

test("formatDuration round-trips whole units", () => {
  expect(formatDuration(5_400_000)).toBe("1h30m");
  expect(formatDuration(90_061_000)).toBe("1d1h1m1s");
  expect(parseDuration(formatDuration(93_784_000))).toBe(93_784_000);
  expect(formatDuration(12)).toBe("12ms");
});
