import { afterEach, expect, test } from "bun:test";
import { configureLogging, Logger, type LogRecord, logLevel } from "../common/log.ts";
import { logUnexpected } from "./errors.ts";

const level = logLevel();
afterEach(() => configureLogging({ level }));

function logged(fn: (log: Logger) => void): LogRecord[] {
  const records: LogRecord[] = [];
  fn(new Logger("controller", (r) => records.push(r)));
  return records;
}

const failure = () => {
  const e = new Error("attempt to write a readonly database\nwhile saving lease l1");
  e.stack = `Error: ${e.message}\n    at save (state.ts:10:5)\n    at mutate (state.ts:20:7)`;
  return e;
};

test("an unexpected error is one line without its stack, whatever its message holds", () => {
  configureLogging({ level: "info" });
  const records = logged((log) => logUnexpected(log, "internal error", failure()));
  expect(records.map((r) => [r.level, r.message])).toEqual([
    ["error", "internal error: attempt to write a readonly database while saving lease l1"],
  ]);
});

test("at debug level its stack follows, a line per frame", () => {
  configureLogging({ level: "debug" });
  const records = logged((log) => logUnexpected(log, "internal error", failure()));
  expect(records.map((r) => [r.level, r.message])).toEqual([
    ["error", "internal error: attempt to write a readonly database while saving lease l1"],
    ["debug", "  at save (state.ts:10:5)"],
    ["debug", "  at mutate (state.ts:20:7)"],
  ]);
});

test("an internal error at the RPC boundary logs one line, with no stack and no literal \\n", async () => {
  configureLogging({ level: "info" });
  const { rpcError } = await import("./services/errors.ts");
  const written: string[] = [];
  const write = process.stderr.write;
  process.stderr.write = ((chunk: string) => written.push(String(chunk)) > 0) as typeof process.stderr.write;
  try {
    expect(rpcError(failure()).rawMessage).toBe("internal error in the controller (see its log)");
  } finally {
    process.stderr.write = write;
  }
  expect(written.join("")).toMatch(/^\S*ERROR\S* controller: internal error: attempt to write a readonly database while saving lease l1\n$/);
});
