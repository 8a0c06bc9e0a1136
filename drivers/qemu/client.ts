/**
 * Client of the QEMU board (upstream's QemuClient): its children's commands plus
 * `j <board> resize disk|memory SIZE` for the next power on.
 */
import { type CommandDef, defineCommand } from "@jumpstarter/driver";
import { CompositeClient } from "../composite/client.ts";

export class QemuClient extends CompositeClient {
  getHostname(): Promise<string> {
    return this.call<string>("get_hostname");
  }

  getUsername(): Promise<string> {
    return this.call<string>("get_username");
  }

  getPassword(): Promise<string> {
    return this.call<string>("get_password");
  }

  /** Grows the raw disk image to `size` (e.g. "20G") at the next power on. */
  async setDiskSize(size: string): Promise<void> {
    await this.call("set_disk_size", size);
  }

  /** Memory for the next power on (e.g. "2G"). */
  async setMemorySize(size: string): Promise<void> {
    await this.call("set_memory_size", size);
  }

  override cli(): CommandDef<any> {
    const base = super.cli();
    const size = { size: { type: "positional", required: true, description: "a size such as 512M, 2G or 20G" } } as const;
    const resize = defineCommand({
      meta: { description: "Resize the board's disk or memory (takes effect at the next power on)" },
      subCommands: {
        disk: defineCommand({
          meta: { description: this.help("set_disk_size", "Grow the disk image at the next power on") },
          args: size,
          run: async ({ args }) => {
            await this.setDiskSize(args.size);
            console.log(`The disk will be grown to ${args.size} at the next power on`);
          },
        }),
        memory: defineCommand({
          meta: { description: this.help("set_memory_size", "Memory size for the next power on") },
          args: size,
          run: async ({ args }) => {
            await this.setMemorySize(args.size);
            console.log(`Memory will be ${args.size} from the next power on`);
          },
        }),
      },
    });
    return defineCommand({ meta: { description: this.description ?? "A QEMU virtual board" }, subCommands: { ...(base.subCommands as Record<string, CommandDef<any>>), resize } });
  }
}
