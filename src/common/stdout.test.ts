/**
 * stdout(): the CLI waits for the stdout stream before it exits only when
 * something took it from here, so a writer that reached `process.stdout` directly
 * could lose its last output (see stdout.ts). This finds any.
 */
import { expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { isTerminal, libcIsatty, ttyBinding } from "./stdout.ts";

const root = join(import.meta.dir, "..", "..");

function sources(dir: string): string[] {
  return readdirSync(join(root, dir), { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts") && !f.includes("node_modules"))
    .map((f) => join(dir, f));
}

test("no code but src/common/stdout.ts uses process.stdout (comments aside)", () => {
  const offenders = [...sources("src"), ...sources("drivers")]
    .filter((f) => f !== join("src", "common", "stdout.ts"))
    .filter((f) => readFileSync(join(root, f), "utf8").split("\n").some((l) => /process\.stdout\b/.test(l) && !/^\s*(\/\/|\*|\/\*)/.test(l)));
  expect(offenders).toEqual([]);
});

test("isTerminal: a file and /dev/null are not terminals, a pseudo-terminal is", () => {
  // Under `bun test` fd 1 and 2 are whatever CI gives; check the device test on known files instead.
  const { openSync, closeSync } = require("node:fs") as typeof import("node:fs");
  for (const [path, terminal] of [["/dev/null", false], [join(root, "package.json"), false], ["/dev/ptmx", true]] as const) {
    const fd = openSync(path, path.startsWith("/dev/") ? "r+" : "r");
    try {
      expect({ path, terminal: isTerminal(fd as 1) }).toEqual({ path, terminal });
      // Both ways of asking agree (the second is the fallback where the first is missing).
      expect({ path, binding: ttyBinding()!(fd), libc: libcIsatty()(fd) }).toEqual({ path, binding: terminal, libc: terminal });
    } finally {
      closeSync(fd);
    }
  }
});
