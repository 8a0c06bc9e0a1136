/**
 * `j` (and `jmp j`): the driver CLI of the current session, built from the
 * exporter's GetReport: each driver's client contributes its subcommands.
 */
import { type CommandDef, defineCommand } from "../common/command.ts";
import { META } from "./command-meta.ts";
import { UserError } from "../common/errors.ts";

/** The command tree of the session in JUMPSTARTER_HOST, named `j`. */
export async function sessionCommand(): Promise<CommandDef<any>> {
  // Not session-client.ts: see exporter-calls.ts for why `j` has a connection of its own.
  const [{ sessionFromEnv }, { connectForJ }, { loadRegistry }] = await Promise.all([
    import("../client/session-address.ts"),
    import("../client/exporter-calls.ts"),
    import("./common.ts"),
  ]);
  const session = sessionFromEnv();
  if (!session) {
    throw new UserError("j drives the exporter of a session: run it inside 'jmp shell' (JUMPSTARTER_HOST is not set)", 2);
  }
  const { root } = await connectForJ(session, await loadRegistry());
  const cmd = root.cli() ?? defineCommand({ meta: { description: "this exporter offers no commands" } });
  const meta = typeof cmd.meta === "object" && cmd.meta && !("then" in cmd.meta) ? cmd.meta : {};
  return { ...cmd, meta: { ...meta, name: "j" } };
}

export async function runJ(argv: string[]): Promise<number> {
  const { runCli, reportError } = await import("./run.ts");
  try {
    return await runCli(await sessionCommand(), "j", argv);
  } catch (e) {
    return reportError(e);
  }
}

/** Listed in `jmp --help`; main.ts hands `jmp j …` to runJ before parsing flags. */
export default defineCommand({
  meta: META.j,
});
