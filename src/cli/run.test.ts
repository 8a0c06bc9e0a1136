/**
 * runCli hands a command the `args` that citty's runCommand would (it parses the
 * words itself so that start-up does not load citty's parser and node:util): the
 * same lines run through both and compared, plus what only runCli does.
 */
import { describe, expect, test } from "bun:test";
import { runCommand, type ArgsDef } from "citty";
import { defineCommand } from "../common/command.ts";
import { repeatable } from "../common/repeatable.ts";
import { runCli } from "./run.ts";

const ARGS = {
  name: { type: "positional", description: "a name" },
  extra: { type: "positional", required: false, default: "none" },
  output: { type: "string", alias: "o", default: "text" },
  driversDir: { type: "string" },
  force: { type: "boolean", alias: "f" },
  all: { type: "boolean", alias: "a" },
  follow: { type: "boolean", default: true },
} as const satisfies ArgsDef;

/** The args a command sees for `words`, through runCli (exit code too) or through citty. */
async function viaRunCli(words: string[], args: ArgsDef = ARGS): Promise<{ code: number; seen?: Record<string, unknown>; calls: string[] }> {
  const calls: string[] = [];
  let seen: Record<string, unknown> | undefined;
  const cmd = defineCommand({
    meta: { name: "t" },
    args,
    setup: () => void calls.push("setup"),
    run: ({ args }) => {
      calls.push("run");
      seen = { ...args };
    },
    cleanup: () => void calls.push("cleanup"),
  });
  const code = await runCli(cmd, "t", words);
  return { code, seen, calls };
}

async function viaCitty(words: string[]): Promise<Record<string, unknown>> {
  let seen: Record<string, unknown> = {};
  await runCommand(defineCommand({ meta: { name: "t" }, args: ARGS, run: ({ args }) => void (seen = { ...args }) }), { rawArgs: words });
  return seen;
}

describe("the args are citty's", () => {
  const lines = [
    ["board"],
    ["board", "second"],
    ["board", "-o", "json"],
    ["board", "--output=yaml", "--output", "json"],
    ["board", "-ojson"],
    ["board", "--drivers-dir", "/d"],
    ["board", "--driversDir=/d"],
    ["board", "-f"],
    ["board", "--force", "--all"],
    ["board", "-fa"],
    ["board", "--no-follow"],
    ["board", "--force=false"],
    ["board", "--", "after", "-x"],
    ["--output", "json", "board", "second"],
  ];
  for (const words of lines) {
    test(words.join(" "), async () => {
      const ours = await viaRunCli(words);
      expect(ours.code).toBe(0);
      expect(ours.seen).toEqual(await viaCitty(words));
    });
  }
});

describe("what runCli does besides", () => {
  test("setup, run and cleanup in order, as citty's runCommand", async () => {
    expect((await viaRunCli(["board"])).calls).toEqual(["setup", "run", "cleanup"]);
  });

  test("a repeatable flag gets every value; absent, [] or [default]", async () => {
    const args = { label: repeatable({ type: "string", alias: "l" }), tag: repeatable({ type: "string", default: "x" }) } as const satisfies ArgsDef;
    const given = await viaRunCli(["-l", "a=1", "--label=b=2", "-lc=3"], args);
    expect(given.seen).toMatchObject({ label: ["a=1", "b=2", "c=3"], l: ["a=1", "b=2", "c=3"], tag: ["x"] });
    expect((await viaRunCli([], args)).seen).toMatchObject({ label: [], tag: ["x"] });
  });

  test("an enum's value outside its options is a usage error (exit 2), and the command does not run", async () => {
    const args = { mode: { type: "enum", options: ["fast", "safe"] } } as const satisfies ArgsDef;
    expect((await viaRunCli(["--mode", "safe"], args)).seen).toMatchObject({ mode: "safe" });
    const wrong = await viaRunCli(["--mode", "quick"], args);
    expect({ code: wrong.code, calls: wrong.calls }).toEqual({ code: 2, calls: [] });
  });
});
