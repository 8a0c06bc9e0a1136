/**
 * `jmp demo`: a scripted tour of a simulated lab, nothing to configure. It runs
 * exactly what a user would: `jmp shell --exporter-config demo.yaml` and `j`
 * commands inside it, against the built-in simulated board.
 */
import { defineCommand } from "citty";

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

// Each step shows the command as a user would type it, then runs it.
const SCRIPT = String.raw`
set -e
step() { printf '\n\033[1m$ %s\033[0m\n' "$1"; shift; "$@"; }
step 'j power on' j power on
step 'j console expect "login:" --timeout 15' j console expect "login:" --timeout 15
step 'j console expect "# " --send "root\r"' j console expect "# " --send 'root\r' --timeout 10
step 'j console expect "# " --send "uname -a\r"' j console expect "# " --send 'uname -a\r' --timeout 10
step 'j console expect "# " --send "cat /proc/uptime\r"' j console expect "# " --send 'cat /proc/uptime\r' --timeout 10
step 'j power read' j power read
step 'j power off' j power off
printf '\n'
`;

export default defineCommand({
  meta: { name: "demo", description: "A scripted tour of a simulated lab: power on a board, watch it boot, log in, run a command" },
  async run() {
    const [{ mkdtempSync, writeFileSync, rmSync }, { tmpdir }, { join }, { loadCatalog }, { startSession }, { runShell }, ec] =
      await Promise.all([
        import("node:fs"), import("node:os"), import("node:path"), import("./common.ts"),
        import("../exporter/local.ts"), import("../client/shell.ts"), import("../common/exporter-config.ts"),
      ]);
    const dir = mkdtempSync(join(tmpdir(), "jmp-demo-"));
    const file = join(dir, "demo.yaml");
    writeFileSync(file, DEMO_CONFIG);
    try {
      console.log(`An exporter config for a simulated board (${file}):\n\n${DEMO_CONFIG}`);
      console.log(`\x1b[1m$ jmp shell --exporter-config ${file} -- <the steps below>\x1b[0m`);
      const config = ec.loadExporterConfigFile(file);
      const running = await startSession(config, await loadCatalog(), "private-socket");
      try {
        process.exitCode = await runShell({ host: running.address, command: ["sh", "-c", SCRIPT], env: { JMP_DRIVERS_ALLOW: "UNSAFE" } });
      } finally {
        await running.close();
      }
      if (process.exitCode === 0) {
        console.log("That was local mode. Next: write your own exporter config (see README) and run 'jmp shell --exporter-config it.yaml'.");
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
});
