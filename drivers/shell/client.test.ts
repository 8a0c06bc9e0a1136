import { afterEach, expect, test } from "bun:test";
import { renderUsage } from "citty";
import { serve, type Served } from "../../src/testing/serve.ts";
import { parseMethodArgs, ShellClient } from "./client.ts";
import { Shell } from "./driver.ts";

const BUN = process.execPath;
const J_SHELL = `${import.meta.dir}/../../test/fixtures/j-shell.ts`;

/** Runs `j shell ARGS…` against a Shell driver with these methods, in a real subprocess. */
function jShell(methods: Record<string, unknown>, args: string[]) {
  return Bun.spawn([BUN, J_SHELL, ...args], {
    env: { ...process.env, SHELL_METHODS: JSON.stringify(methods), NO_COLOR: "1" },
    stdout: "pipe",
    stderr: "pipe",
  });
}

let served: Served<ShellClient> | undefined;
afterEach(async () => {
  await served?.close();
  served = undefined;
});

test("j shell METHOD passes arguments and -e variables, and exits with the command's code", async () => {
  const p = jShell({ greet: 'echo "$GREETING $1 $2"; echo "to stderr" >&2; exit 7' }, ["greet", "-e", "GREETING=hello", "--env=X=1", "big", "-la"]);
  expect(await p.exited).toBe(7);
  expect(await new Response(p.stdout).text()).toBe("hello big -la\n");
  expect(await new Response(p.stderr).text()).toBe("to stderr\n");
});

test("j shell METHOD prints output live, before the command ends", async () => {
  const p = jShell({ slow: "echo first; sleep 1; echo second" }, ["slow"]);
  const reader = p.stdout.getReader();
  const first = await reader.read();
  expect(new TextDecoder().decode(first.value)).toBe("first\n");
  expect(p.exitCode).toBeNull();
  expect(await p.exited).toBe(0);
});

test("j shell reports a refused variable and a malformed -e", async () => {
  const refused = jShell({ env: "env" }, ["env", "-e", "LD_PRELOAD=/tmp/x.so"]);
  expect(await refused.exited).toBe(1);
  expect(await new Response(refused.stderr).text()).toContain("environment variable 'LD_PRELOAD' is blocked for security reasons");
  const malformed = jShell({ env: "env" }, ["env", "-e", "NOEQUALS"]);
  expect(await malformed.exited).toBe(1);
  expect(await new Response(malformed.stderr).text()).toContain("invalid --env value 'NOEQUALS': use KEY=VALUE");
});

test("one subcommand per method, with configured or default descriptions; _private ones hidden", async () => {
  served = await serve<ShellClient>(Shell.create({
    methods: { deploy: { command: "true", description: "Deploy the app" }, restart: "true", _internal: "true" },
  }));
  const cli = served.client.cli();
  const usage = await renderUsage(cli);
  expect(usage).toContain("Deploy the app");
  expect(usage).toContain("Execute the restart shell method");
  expect(usage).not.toContain("_internal");
  const subs = await (cli.subCommands as () => Promise<Record<string, unknown>>)();
  expect(Object.keys(subs)).toEqual(["deploy", "restart", "_internal"]);
});

test("options come before the command's arguments, as upstream", () => {
  expect(parseMethodArgs(["-e", "A=1", "-eB=2=3", "x", "-e", "C=4"])).toEqual({ args: ["x", "-e", "C=4"], env: { A: "1", B: "2=3" } });
  expect(parseMethodArgs(["--", "-e", "A=1"])).toEqual({ args: ["-e", "A=1"], env: {} });
  expect(parseMethodArgs(["-la"])).toEqual({ args: ["-la"], env: {} });
  expect(() => parseMethodArgs(["-e"])).toThrow("-e needs a KEY=VALUE after it");
  expect(() => parseMethodArgs(["--env", "=x"])).toThrow("invalid --env value '=x'");
});
