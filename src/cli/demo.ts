/**
 * `jmp demo`: a scripted tour of a simulated lab, nothing to configure. It runs
 * exactly what a user would: `jmp shell --exporter-config demo.yaml` and `j`
 * commands inside it, against the built-in simulated board.
 */
import { defineCommand } from "../common/command.ts";
import { META } from "./command-meta.ts";
import { useColor } from "../common/log.ts";
import { stdout } from "../common/stdout.ts";

export const DEMO_CONFIG = `apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata:
  namespace: default
  name: demo
description: A simulated board on a simulated lab machine
export:
  dut:
    type: DutSim
    config:
      hostname: demo-board
  power:
    ref: dut.power
  console:
    ref: dut.console
`;

// Each step shows the command as a user would type it (in bold where useColor
// allows: the escapes come in through the environment), then runs it.
const SCRIPT = String.raw`
set -e
step() { printf '\n%s$ %s%s\n' "$_JMP_DEMO_BOLD" "$1" "$_JMP_DEMO_PLAIN"; shift; "$@"; }
step 'j power on' j power on
step 'j console expect "login:" --timeout 15' j console expect "login:" --timeout 15
step 'j console expect "# " --send "root\r"' j console expect "# " --send 'root\r' --timeout 10
step 'j console expect "# " --send "uname -a\r"' j console expect "# " --send 'uname -a\r' --timeout 10
step 'j console expect "# " --send "cat /proc/uptime\r"' j console expect "# " --send 'cat /proc/uptime\r' --timeout 10
step 'j power read' j power read
step 'j power off' j power off
printf '\n'
`;


const color = () => useColor(stdout());
const bold = (s: string) => (color() ? `\x1b[1m${s}\x1b[0m` : s);
const boldEnv = (): Record<string, string> => (color() ? { _JMP_DEMO_BOLD: "\x1b[1m", _JMP_DEMO_PLAIN: "\x1b[0m" } : {});

/** Local mode: `jmp shell --exporter-config demo.yaml` and the steps inside. */
async function localTour(dir: string): Promise<number> {
  const [{ writeFileSync }, { join }, { loadCatalog }, { startSession }, { runShell }, ec] = await Promise.all([
    import("node:fs"), import("node:path"), import("./common.ts"), import("../exporter/local.ts"), import("../client/shell.ts"),
    import("../common/exporter-config.ts"),
  ]);
  const file = join(dir, "demo.yaml");
  writeFileSync(file, DEMO_CONFIG);
  console.log(`An exporter config for a simulated board (${file}):\n\n${DEMO_CONFIG}`);
  console.log(bold(`$ jmp shell --exporter-config ${file} -- <the steps below>`));
  const running = await startSession(ec.loadExporterConfigFile(file), await loadCatalog(), "private-socket");
  try {
    return await runShell({ host: running.address, command: ["sh", "-c", SCRIPT], env: { JMP_DRIVERS_ALLOW: "UNSAFE", ...boldEnv() } });
  } finally {
    await running.close();
  }
}

/**
 * Distributed mode on one machine: a controller with a temporary data dir, an
 * exporter serving the simulated board, a client leasing it by label.
 */
async function distributedTour(dir: string): Promise<number> {
  const [{ readFileSync, writeFileSync }, { join }, { selfCommand: self }] = await Promise.all([import("node:fs"), import("node:path"), import("../common/self.ts")]);
  const env = { ...process.env, JMP_CLIENT_CONFIG_HOME: join(dir, "config"), NO_COLOR: "1", ...boldEnv() } as Record<string, string>;
  const data = join(dir, "data");
  const children: ReturnType<typeof Bun.spawn>[] = [];
  const step = (text: string) => console.log(`\n${bold(`$ ${text}`)}`);
  const run = (args: string[]) => {
    const r = Bun.spawnSync([...self(), ...args], { env, stdout: "inherit", stderr: "inherit" });
    if (r.exitCode !== 0) throw new Error(`'jmp ${args.join(" ")}' failed with exit code ${r.exitCode}`);
  };
  /** Starts a long-running jmp and waits for a line in its log. */
  const start = async (args: string[], ready: RegExp): Promise<RegExpExecArray> => {
    const child = Bun.spawn([...self(), ...args], { env, stdout: "ignore", stderr: "pipe" });
    children.push(child);
    let log = "";
    const decoder = new TextDecoder();
    const reader = child.stderr.getReader();
    const deadline = Date.now() + 20_000;
    for (;;) {
      const m = ready.exec(log);
      if (m) {
        void (async () => { while (!(await reader.read()).done); })();
        return m;
      }
      if (Date.now() > deadline) throw new Error(`'jmp ${args.join(" ")}' did not start; it said:\n${log}`);
      const { done, value } = await reader.read();
      if (done) throw new Error(`'jmp ${args.join(" ")}' exited; it said:\n${log}`);
      log += decoder.decode(value, { stream: true });
      stdout().write(decoder.decode(value).replace(/^/gm, "    "));
    }
  };
  try {
    step(`jmp controller run --data-dir ${data} --listen 127.0.0.1:0     # on the lab server`);
    const m = await start(["controller", "run", "--data-dir", data, "--listen", "127.0.0.1:0", "--advertise", "127.0.0.1:0"], /clients and exporters use (\S+);/);
    const endpoint = m[1]!;
    step("jmp admin create exporter demo-board -l board=sim --save   # register the lab machine");
    run(["admin", "create", "exporter", "demo-board", "-l", "board=sim", "--data-dir", data, "--save"]);
    const file = join(env.JMP_CLIENT_CONFIG_HOME!, "exporters", "demo-board.yaml");
    const exportSection = DEMO_CONFIG.slice(DEMO_CONFIG.indexOf("export:"));
    writeFileSync(file, readFileSync(file, "utf8").replace(/^export: \{\}\n?/m, exportSection));
    console.log(`    (then describe its devices under export: in ${file})`);
    step("jmp run --exporter demo-board                                # on the lab machine (a Raspberry Pi, say)");
    await start(["run", "--exporter", "demo-board"], /registered as/);
    step("jmp admin create client demo --save                          # a user");
    run(["admin", "create", "client", "demo", "--data-dir", data, "--save"]);
    step("jmp exporter list --with leases,status                       # from the laptop");
    run(["exporter", "list", "--with", "leases,status"]);
    step("jmp shell -l board=sim -- <the steps below>                  # lease a board by label, use it, give it back");
    const r = Bun.spawnSync([...self(), "shell", "-l", "board=sim", "--duration", "10m", "--", "sh", "-c", SCRIPT], { env, stdout: "inherit", stderr: "inherit" });
    step("jmp lease list -a");
    run(["lease", "list", "-a"]);
    console.log(`\n(controller at ${endpoint}; everything ran from ${dir}, removed now)`);
    return r.exitCode ?? 1;
  } finally {
    for (const c of children) c.kill("SIGTERM");
    await Promise.all(children.map((c) => c.exited));
  }
}

export default defineCommand({
  meta: META.demo,
  args: { local: { type: "boolean", description: "local mode only: no controller, the board in-process" } },
  async run({ args }) {
    const [{ mkdtempSync, rmSync }, { tmpdir }, { join }] = await Promise.all([import("node:fs"), import("node:os"), import("node:path")]);
    const dir = mkdtempSync(join(tmpdir(), "jmp-demo-"));
    try {
      process.exitCode = args.local ? await localTour(dir) : await distributedTour(dir);
      if (process.exitCode === 0) {
        console.log(args.local
          ? "That was local mode. 'jmp demo' without --local shows the same board shared through a controller."
          : "That was a shared lab on one machine. README.md shows the same commands across machines.");
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
});
