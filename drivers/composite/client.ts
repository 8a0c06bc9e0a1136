/** Client of a composite: its children become `j` subcommands. */
import { type CommandDef, defineCommand, DriverClient } from "@jumpstarter/driver";

export class CompositeClient extends DriverClient {
  override cli(): CommandDef<any> {
    const subCommands: Record<string, CommandDef<any>> = {};
    for (const [name, child] of Object.entries(this.children)) {
      const cmd = child.cli();
      if (cmd) subCommands[name] = cmd;
    }
    return defineCommand({
      meta: { description: this.description ?? "Generic composite device" },
      subCommands,
    });
  }
}
