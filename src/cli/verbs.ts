/** Upstream's verb-first spellings: `jmp create lease`, `jmp get leases`, `jmp delete lease`, `jmp get exporters`. */
import { type CommandDef, defineCommand } from "../common/command.ts";
import { META } from "./command-meta.ts";
import exporterList from "./exporter-list.ts";
import { createLease, deleteLease, getLease, listLeases, updateLease } from "./lease.ts";

async function resolveArgs(cmd: CommandDef<any>): Promise<Record<string, any>> {
  const a = cmd.args;
  return (typeof a === "function" ? await a() : await a) ?? {};
}

/** `jmp get lease NAME` shows one; `jmp get leases` lists them. */
const getLeases = defineCommand({
  meta: { name: "leases", description: "List leases, or show one by name", alias: "lease" },
  args: async () => ({ ...(await resolveArgs(listLeases)), lease: { type: "positional", description: "a lease name (shows that one)", required: false } }),
  async run(ctx) {
    const target = ctx.args.lease ? getLease : listLeases;
    await target.run!(ctx as never);
  },
});

const as = (cmd: CommandDef<any>, name: string, alias: string[]) =>
  defineCommand({ ...cmd, meta: async () => ({ ...(typeof cmd.meta === "function" ? await cmd.meta() : await cmd.meta), name, alias }) });

export const create = defineCommand({
  meta: META.create,
  subCommands: { lease: as(createLease, "lease", ["leases"]) },
});

export const get = defineCommand({
  meta: META.get,
  subCommands: { leases: getLeases, exporters: as(exporterList, "exporters", ["exporter"]) },
});

export const remove = defineCommand({
  meta: META.delete,
  subCommands: { leases: as(deleteLease, "leases", ["lease"]) },
});

export const update = defineCommand({
  meta: META.update,
  subCommands: { lease: as(updateLease, "lease", ["leases"]) },
});
