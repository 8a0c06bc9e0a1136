/**
 * `j <shell> …` in miniature for client.test.ts: serves a Shell driver configured
 * from $SHELL_METHODS (JSON), runs its client's command tree on argv, and exits as
 * `j` does: with a CommandExitError's code, or 1 after printing any other error.
 */
import { runCommand } from "citty";
import { serve } from "../../../src/testing/serve.ts";
import { CommandExitError } from "../command-exit.ts";
import type { ShellClient } from "../client.ts";
import { Shell } from "../driver.ts";

const served = await serve<ShellClient>(Shell.create({ methods: JSON.parse(process.env.SHELL_METHODS ?? "{}") }));
let code = 0;
try {
  await runCommand(served.client.cli(), { rawArgs: process.argv.slice(2) });
} catch (e) {
  if (e instanceof CommandExitError) code = e.exitCode;
  else {
    console.error((e as Error).message);
    code = 1;
  }
}
await served.close();
process.exit(code);
