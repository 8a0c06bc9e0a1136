import { afterEach, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import YAML from "yaml";
import { InvalidArgumentError } from "@jumpstarter/driver";
import { eventually } from "../../src/common/eventually.ts";
import { parseExporterConfig } from "../../src/common/exporter-config.ts";
import { serve, type Served } from "../../src/testing/serve.ts";
import { ShellClient } from "./client.ts";
import { Shell } from "./driver.ts";

let served: Served<ShellClient> | undefined;
afterEach(async () => {
  await served?.close();
  served = undefined;
});

async function shell(methods: Record<string, unknown>, extra: Record<string, unknown> = {}): Promise<ShellClient> {
  served = await serve<ShellClient>(Shell.create({ methods, ...extra }));
  return served.client;
}

async function collect(client: ShellClient, method: string, args: string[] = [], env: Record<string, string> = {}) {
  let stdout = "";
  let stderr = "";
  const code = await client.run(method, args, { env, stdout: (c) => void (stdout += c), stderr: (c) => void (stderr += c) });
  return { stdout, stderr, code };
}

/** The error a promise fails with (bun's `expect(p).rejects` stalls the in-process server). */
async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected the promise to fail");
}

/** Gone, or a zombie nobody has reaped yet: either way it runs no more. */
function gone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return /^[ZX]$/.test(stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3));
  } catch {
    return true;
  }
}

/** Polls /proc until the process has stopped running. */
async function waitGone(pid: number, ms: number): Promise<void> {
  await eventually(() => expect(gone(pid)).toBe(true), { what: `process ${pid} to stop`, interval: 20, timeout: ms });
}

test("arguments reach the script as $1, $2 … with the method name as $0", async () => {
  const client = await shell({ show: 'echo "$0|$1|$2|$#"' });
  expect(await client.methods()).toEqual(["show"]);
  expect(await collect(client, "show", ["two words", "*"])).toEqual({ stdout: "show|two words|*|2\n", stderr: "", code: 0 });
});

test("env is added to the exporter's environment; dangerous names are refused", async () => {
  const client = await shell({ env: 'echo "$GREETING ${HOME:+home-kept}"' });
  expect(await collect(client, "env", [], { GREETING: "hi there" })).toEqual({ stdout: "hi there home-kept\n", stderr: "", code: 0 });
  for (const name of ["PATH", "LD_PRELOAD", "LD_AUDIT", "BASH_FUNC_x", "BASH_ENV", "HOME", "IFS"]) {
    const error = await rejection(collect(client, "env", [], { [name]: "/tmp/evil" }));
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect(error.message).toContain(`environment variable '${name}' is blocked for security reasons`);
  }
  expect((await rejection(collect(client, "env", [], { "A-B": "x" }))).message).toContain("invalid environment variable name 'A-B'");
});

test("stderr comes back apart from stdout", async () => {
  const client = await shell({ both: "echo out; echo err >&2; echo out2" });
  expect(await collect(client, "both")).toEqual({ stdout: "out\nout2\n", stderr: "err\n", code: 0 });
});

test("a non-zero exit code is returned, a death by signal as minus the signal", async () => {
  const client = await shell({ fail: "echo failing; exit 3", killed: "kill -9 $$" });
  expect(await collect(client, "fail")).toEqual({ stdout: "failing\n", stderr: "", code: 3 });
  expect((await collect(client, "killed")).code).toBe(-9);
});

test("output streams live, as the command prints it", async () => {
  const client = await shell({ slow: "echo first; sleep 0.5; echo second" });
  const seen: { item: unknown; at: number }[] = [];
  for await (const item of client.output("slow")) seen.push({ item, at: Date.now() });
  const first = seen.find((s) => (s.item as string[])[0] === "first\n")!;
  const last = seen.at(-1)!;
  expect(first).toBeDefined();
  expect(last.item).toEqual(["", "", 0]);
  expect(last.at - first.at).toBeGreaterThanOrEqual(400);
  expect(seen.map((s) => (s.item as string[])[0]).join("")).toBe("first\nsecond\n");
});

test("a method past its timeout is killed with its children and reports 199", async () => {
  const client = await shell({ hang: { command: "sleep 30 & echo $!; wait", timeout: 0.5 } });
  let pid = 0;
  let stderr = "";
  const started = Date.now();
  const code = await client.run("hang", [], { stdout: (c) => void (pid ||= Number(c.trim())), stderr: (c) => void (stderr += c) });
  expect(code).toBe(199);
  expect(Date.now() - started).toBeLessThan(3000);
  expect(stderr).toContain("Timeout expired while running hang");
  expect(pid).toBeGreaterThan(0);
  await waitGone(pid, 1000);
});

test("a command that ignores SIGTERM is killed after the grace period", async () => {
  const client = await shell({ stubborn: { command: "trap '' TERM; sleep 30 & echo $!; wait", timeout: 0.3 } });
  let pid = 0;
  const code = await client.run("stubborn", [], { stdout: (c) => void (pid ||= Number(c.trim())), stderr: () => {} });
  expect(code).toBe(199);
  await waitGone(pid, 1000);
}, 10_000);

test("cancelling the stream kills the command", async () => {
  const client = await shell({ hang: "sleep 30 & echo $!; wait" });
  let pid = 0;
  for await (const [out] of client.output("hang")) {
    pid = Number(out.trim());
    if (pid) break;
  }
  expect(pid).toBeGreaterThan(0);
  await waitGone(pid, 3000);
});

test("the end of the session kills commands still running", async () => {
  const client = await shell({ hang: "sleep 30 & echo $!; wait" });
  const abort = new AbortController();
  const started = Promise.withResolvers<number>();
  const running = client.run("hang", [], { signal: abort.signal, stdout: (c) => started.resolve(Number(c.trim())) }).catch(() => {});
  const pid = await started.promise;
  await served!.close();
  expect(gone(pid)).toBe(true);
  abort.abort();
  await running;
});

test("an unknown method is refused with the configured ones listed", async () => {
  const client = await shell({ ls: "ls", pwd: "pwd" });
  const error = await rejection(collect(client, "rm"));
  expect(error).toBeInstanceOf(InvalidArgumentError);
  expect(error.message).toContain("unknown shell method 'rm'; configured methods: ls, pwd");
});

test("the wire items are upstream's (stdout, stderr, returncode) triples", async () => {
  const client = await shell({ hello: { description: "only a description" } });
  const items = [];
  for await (const item of client.output("hello")) items.push(item);
  expect(items.at(-1)).toEqual(["", "", 0]);
  expect(items.map((i) => i[0]).join("")).toBe("Hello\n");
  expect(items.every((i, n) => i.length === 3 && (i[2] === null) === (n < items.length - 1))).toBe(true);
  expect(client.methodsDescription).toEqual({ hello: "only a description" });
});

test("shell, cwd and per-method timeout come from the config", async () => {
  const client = await shell({ where: "pwd; echo $0" }, { shell: ["sh", "-c"], cwd: "/tmp" });
  expect(await collect(client, "where")).toEqual({ stdout: "/tmp\nwhere\n", stderr: "", code: 0 });
  await served!.close();
  const missing = await shell({ where: "pwd" }, { cwd: "/nonexistent/dir" });
  expect((await rejection(collect(missing, "where"))).message).toContain("working directory '/nonexistent/dir'");
});

test("config mistakes are reported at load with their key path", () => {
  const load = (config: Record<string, unknown>) => () => Shell.create(config);
  expect(load({})).toThrow("methods: missing");
  expect(load({ methods: {} })).toThrow("methods: no methods configured");
  expect(load({ methods: { ls: 5 } })).toThrow("methods.ls: expected a command string or a mapping with command, description and timeout, got number 5");
  expect(load({ methods: { ls: ["ls"] } })).toThrow("methods.ls: expected a command string or a mapping");
  expect(load({ methods: { ls: "  " } })).toThrow("methods.ls: expected a non-empty shell command");
  expect(load({ methods: { ls: { comand: "ls" } } })).toThrow("methods.ls.comand: unknown key (did you mean 'command'?");
  expect(load({ methods: { ls: { command: "ls", timeout: 0 } } })).toThrow("methods.ls.timeout: expected a number of seconds greater than 0, got 0");
  expect(load({ methods: { ls: "ls" }, shell: [] })).toThrow("shell: expected the shell and its flags");
  expect(load({ methods: { ls: "ls" }, timeout: "soon" })).toThrow("timeout: expected a number");
  expect(load({ methods: { ls: "ls" }, log_level: "LOUD" })).toThrow("log_level: expected one of");
});

test("an exporter config loads by upstream type path and reports errors with file and path", async () => {
  const lab = (yaml: string) => parseExporterConfig(YAML.parse(yaml), "lab.yaml");
  served = await serve<ShellClient>(lab(`
export:
  sh:
    type: jumpstarter_driver_shell.driver.Shell
    methods_description:
      hi: Say hi
    config:
      methods:
        hi: echo hi
      log_level: DEBUG
`));
  const client = served.client.child("sh", ShellClient);
  expect(client.labels["jumpstarter.dev/client"]).toBe("jumpstarter_driver_shell.client.ShellClient");
  expect(client.methodsDescription).toEqual({ hi: "Say hi" });
  expect((await collect(client, "hi")).stdout).toBe("hi\n");
  await served.close();
  const broken = serve(lab(`
export:
  sh:
    type: Shell
    config:
      methods:
        hi: 1
`));
  expect((await rejection(broken)).message).toContain("lab.yaml: export.sh.config.methods.hi: expected a command string");
});
