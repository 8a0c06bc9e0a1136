/**
 * Hooks against a real session in this process: which program runs a script, the
 * checks at start, the environment a hook gets, the statuses around it, its output
 * on the session's LogStream and what it adds to the MOTD. (`j` inside a hook, and
 * the three modes, run on dist/jmp in test/hooks.test.ts.)
 */
import { afterAll, expect, test } from "bun:test";
import { chmodSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { BUILTIN_DRIVERS } from "../../drivers/catalog.ts";
import { tempDir } from "../../test/helpers.ts";
import { ConfigError } from "../common/errors.ts";
import { parseExporterConfig } from "../common/exporter-config.ts";
import { Logger } from "../common/log.ts";
import { buildDriverTree } from "../driver/build.ts";
import { DriverCatalog } from "../driver/catalog.ts";
import { ExporterStatus, LogSource } from "../gen/jumpstarter/v1/common_pb.ts";
import type { LogStreamResponse } from "../gen/jumpstarter/v1/jumpstarter_pb.ts";
import { ExporterHooks, resolveHooks } from "./hooks.ts";
import { ExporterSession } from "./session.ts";

const dir = tempDir("jmp-hooks-");
afterAll(() => dir.remove());
const catalog = new DriverCatalog(BUILTIN_DRIVERS);
// Relative script paths are taken from the config file's folder: the file must exist.
dir.file("exporter.yaml", "");

function configOf(hooks: Record<string, unknown>, file = join(dir.path, "exporter.yaml")) {
  return parseExporterConfig({ export: { power: { type: "MockPower" } }, hooks }, file);
}

function configError(hooks: Record<string, unknown>, env?: NodeJS.ProcessEnv): ConfigError {
  try {
    resolveHooks(configOf(hooks), env);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as ConfigError).exitCode).toBe(2);
    return e as ConfigError;
  }
  throw new Error("resolveHooks accepted it");
}

test("a single line naming a file runs the file (relative to the config's folder, .py with python3); anything else runs inline with -c", () => {
  const sh = dir.file("prepare.sh", "echo hi\n");
  mkdirSync(join(dir.path, "hooks"), { recursive: true });
  const py = dir.file("hooks/check.py", "print('hi')\n");
  const hooks = resolveHooks(configOf({
    beforeLease: { script: sh },
    afterLease: { script: "hooks/check.py" },
    healthCheck: { script: "j power on\nj power off\n", exec: "bash", every: 1 },
  }));
  expect(hooks.beforeLease!.argv).toEqual(["/bin/sh", sh]);
  expect(hooks.afterLease!.argv).toEqual([Bun.which("python3")!, py]);
  expect(hooks.healthCheck!.argv).toEqual([Bun.which("bash")!, "-c", "j power on\nj power off\n"]);
  // A command without a path is a command, as upstream: `reboot-board` runs inline.
  expect(resolveHooks(configOf({ beforeLease: { script: "reboot-board" } })).beforeLease!.argv).toEqual(["/bin/sh", "-c", "reboot-board"]);
  expect(resolveHooks(configOf({ beforeLease: { script: "  " } }))).toEqual({});
});

test("a missing script file or interpreter is a config error at start naming the file and the key", () => {
  const file = join(dir.path, "exporter.yaml");
  expect(configError({ beforeLease: { script: "/opt/hooks/missing.sh" } }).message).toBe(
    `${file}: hooks.beforeLease.script: /opt/hooks/missing.sh: no such file (a single line naming a file runs that file; write the command inline otherwise)`,
  );
  expect(configError({ afterLease: { script: "./gone.py" } }).message).toBe(
    `${file}: hooks.afterLease.script: ${join(dir.path, "gone.py")}: no such file (a single line naming a file runs that file; relative to ${dir.path}; write the command inline otherwise)`,
  );
  expect(configError({ afterLease: { script: "echo hi", exec: "/usr/bin/no-such-shell" } }).message).toBe(
    `${file}: hooks.afterLease.exec: /usr/bin/no-such-shell: no such program, or not executable`,
  );
  expect(configError({ beforeLease: { script: "echo hi", exec: "zsh-not-here" } }, { PATH: "/usr/bin:/bin" }).message).toBe(
    `${file}: hooks.beforeLease.exec: 'zsh-not-here' is not on the PATH (/usr/bin:/bin): install it or give its full path`,
  );
  const py = dir.file("hook.py", "print(1)\n");
  expect(configError({ healthCheck: { script: py, interval: "1m" } }, { PATH: dir.path }).message).toBe(
    `${file}: hooks.healthCheck.script: ${py} is a Python script, but python3 is not on the PATH: install it, or set hooks.healthCheck.exec`,
  );
  const noExec = dir.file("plain.txt", "");
  chmodSync(noExec, 0o644);
  expect(configError({ beforeLease: { script: "echo", exec: noExec } }).message).toContain(`hooks.beforeLease.exec: ${noExec}: no such program, or not executable`);
  expect(configError({ beforeLease: { script: dir.path } }).message).toBe(`${file}: hooks.beforeLease.script: ${dir.path} is not a file`);
});

/** A session of MockPower and the log entries its clients would read. */
function session() {
  const s = new ExporterSession({ root: buildDriverTree(configOf({}), catalog), motd: "configured", status: ExporterStatus.BEFORE_LEASE_HOOK });
  const entries: LogStreamResponse[] = [];
  // The backlog is what a LogStream reader gets first; read it as one would.
  const read = () => entries.push(...(s as unknown as { backlog: LogStreamResponse[] }).backlog.splice(0));
  return { s, entries, read };
}

const quiet = new Logger("exporter", () => {});

test("beforeLease: upstream's environment, BEFORE_LEASE_HOOK while it runs, LEASE_READY after, its output on LogStream, JMP_MOTD_FILE added to the MOTD", async () => {
  const hooks = new ExporterHooks(resolveHooks(configOf({
    beforeLease: {
      script: [
        'echo "lease=$LEASE_NAME client=$CLIENT_NAME allow=$JMP_DRIVERS_ALLOW term=$TERM debian=$DEBIAN_FRONTEND git=$GIT_TERMINAL_PROMPT ps1=$(env | grep -c ^PS1=)"',
        '[ -S "$JUMPSTARTER_HOST" ] && echo "a socket"',
        "command -v j >/dev/null && echo \"j is on the PATH\"",
        'echo "Board flashed with build 42" > "$JMP_MOTD_FILE"',
      ].join("\n"),
    },
  })), quiet);
  const { s, entries, read } = session();
  const reports: string[] = [];
  const before = process.env.PS1;
  process.env.PS1 = "$ ";
  let verdict;
  try {
    verdict = await hooks.beforeLease(s, { leaseName: "L1", clientName: "alice" }, (status, message) => reports.push(`${ExporterStatus[status]}: ${message}`));
  } finally {
    if (before === undefined) delete process.env.PS1;
    else process.env.PS1 = before;
  }
  read();
  expect(verdict).toEqual({ proceed: true });
  expect(reports).toEqual(["BEFORE_LEASE_HOOK: Running beforeLease hook", "LEASE_READY: Ready for commands"]);
  expect(s.currentStatus()).toBe(ExporterStatus.LEASE_READY);
  expect(entries.map((e) => [e.source, e.message])).toEqual([
    [LogSource.BEFORE_LEASE_HOOK, "lease=L1 client=alice allow=UNSAFE term=dumb debian=noninteractive git=0 ps1=0"],
    [LogSource.BEFORE_LEASE_HOOK, "a socket"],
    [LogSource.BEFORE_LEASE_HOOK, "j is on the PATH"],
  ]);
  expect(s.motd).toBe("configured\nBoard flashed with build 42");
  await s.close();
});

test("onFailure: warn goes on with upstream's [HOOK_WARNING] message; endLease and exit stop the lease; a timeout fails the same way", async () => {
  const cases = [
    [{ script: "echo nope; exit 3" }, { proceed: true, warning: 'beforeLease hook warning: exit code 3; last output: "nope"' },
      "LEASE_READY", '[HOOK_WARNING] beforeLease hook warning: exit code 3; last output: "nope"'],
    [{ script: "exit 1", onFailure: "endLease" }, { proceed: false, onFailure: "endLease", message: "beforeLease hook failed (onFailure: endLease): exit code 1" },
      "BEFORE_LEASE_HOOK_FAILED", "beforeLease hook failed (onFailure: endLease): exit code 1"],
    [{ script: "echo started; sleep 30", timeout: 1, onFailure: "exit" }, { proceed: false, onFailure: "exit" },
      "BEFORE_LEASE_HOOK_FAILED", 'beforeLease hook failed (onFailure: exit): timed out after 1 s (its process group was ended); last output: "started"'],
  ] as const;
  for (const [hook, verdict, status, message] of cases) {
    const hooks = new ExporterHooks(resolveHooks(configOf({ beforeLease: hook })), quiet);
    const { s, entries, read } = session();
    expect(await hooks.beforeLease(s, { leaseName: "L", clientName: "c" }, () => {})).toMatchObject(verdict);
    read();
    expect(ExporterStatus[s.currentStatus()]).toBe(status);
    const statusMessage = (s as unknown as { statusMessage: string }).statusMessage;
    expect(statusMessage).toBe(message);
    // The exporter says it once (source SYSTEM): clients show it from the status.
    expect(entries.filter((e) => e.source === LogSource.SYSTEM).map((e) => e.message)).toHaveLength(1);
    await s.close();
  }
}, 15_000);

test("afterLease: AFTER_LEASE_HOOK reported while it runs; AVAILABLE only in the session (the exporter says when it is available); a failure is reported", async () => {
  const ok = new ExporterHooks(resolveHooks(configOf({ afterLease: { script: "echo cleaning" } })), quiet);
  const { s, entries, read } = session();
  const reports: string[] = [];
  expect(await ok.afterLease(s, { leaseName: "L", clientName: "c" }, (st) => reports.push(ExporterStatus[st]))).toEqual({ proceed: true });
  read();
  expect(reports).toEqual(["AFTER_LEASE_HOOK"]);
  expect(s.currentStatus()).toBe(ExporterStatus.AVAILABLE);
  expect(entries.map((e) => [e.source, e.message])).toEqual([[LogSource.AFTER_LEASE_HOOK, "cleaning"]]);

  const failing = new ExporterHooks(resolveHooks(configOf({ afterLease: { script: "exit 2", onFailure: "endLease" } })), quiet);
  reports.length = 0;
  expect(await failing.afterLease(s, { leaseName: "L", clientName: "c" }, (st) => reports.push(ExporterStatus[st]))).toMatchObject({ proceed: false });
  expect(reports).toEqual(["AFTER_LEASE_HOOK", "AFTER_LEASE_HOOK_FAILED"]);
  await s.close();
});

test("while a hook runs, the client's driver calls are refused and the hook's own socket takes them", async () => {
  const { s } = session();
  // What the hook's `j` and a client each reach: the same drivers, through different routes.
  const { serveRoutes } = await import("./serve.ts");
  const { ConnectPortal } = await import("../driver/portal.ts");
  const { sessionConnection } = await import("../client/transport.ts");
  const client = await serveRoutes(s, { unix: join(dir.path, "client.sock") });
  const hook = await serveRoutes(s.hookRoutes(), { unix: join(dir.path, "hook.sock") });
  try {
    const viaClient = new ConnectPortal(sessionConnection({ host: client.address }));
    const viaHook = new ConnectPortal(sessionConnection({ host: hook.address }));
    const power = (await viaClient.getReport()).reports.find((r) => r.labels["jumpstarter.dev/name"] === "power")!.uuid;
    const refused = await viaClient.call(power, "on", []).then(() => undefined, (e: Error) => e);
    expect(refused?.message).toContain("the exporter's beforeLease hook is running: driver calls wait until it has finished");
    await viaHook.call(power, "on", []);
    s.setStatus(ExporterStatus.LEASE_READY);
    await viaClient.call(power, "off", []);
  } finally {
    await client.close();
    await hook.close();
    await s.close();
  }
});

test("each hook gets fresh routes: closing the beforeLease hook's socket does not refuse the afterLease hook's calls", async () => {
  const { s } = session();
  const { serveRoutes } = await import("./serve.ts");
  const { ConnectPortal } = await import("../driver/portal.ts");
  const { sessionConnection } = await import("../client/transport.ts");
  try {
    const before = await serveRoutes(s.hookRoutes(), { unix: join(dir.path, "before.sock") });
    const viaBefore = new ConnectPortal(sessionConnection({ host: before.address }));
    const power = (await viaBefore.getReport()).reports.find((r) => r.labels["jumpstarter.dev/name"] === "power")!.uuid;
    await viaBefore.call(power, "on", []);
    await before.close({ message: "the beforeLease hook has ended", graceMs: 0 });
    const after = await serveRoutes(s.hookRoutes(), { unix: join(dir.path, "after.sock") });
    try {
      // DriverCall is a raw route: a shared one stayed aborted with the first hook's message.
      await new ConnectPortal(sessionConnection({ host: after.address })).call(power, "off", []);
    } finally {
      await after.close();
    }
  } finally {
    await s.close();
  }
});
