/** Client of the NOYITO relays: the power client plus `status` (`j relay status`), as upstream's NoyitoPowerClient. */
import { defineCommand } from "@jumpstarter/driver";
import { PowerClient } from "../power/client.ts";

export class NoyitoPowerClient extends PowerClient {
  /** The relay channel's state: "on", "off", or "partial" (all_channels, when they disagree). */
  async status(): Promise<string> {
    return this.call<string>("status");
  }

  override cli() {
    const base = super.cli();
    return defineCommand({
      ...base,
      subCommands: {
        ...(base.subCommands as Record<string, ReturnType<typeof defineCommand>>),
        status: defineCommand({
          meta: { description: this.help("status", "Query relay channel state") },
          run: async () => console.log(await this.status()),
        }),
      },
    });
  }
}
