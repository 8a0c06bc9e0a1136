/**
 * `jmp driver list`: the drivers this executable can run, built-in and from drivers
 * folders. Driver files that fail to load are reported after the list (which still
 * shows every good driver) and make the exit code 1, so a check in CI notices.
 */
import { defineCommand } from "../common/command.ts";
import { META } from "./command-meta.ts";
import { DRIVERS_DIR_ARG } from "./common.ts";

const list = defineCommand({
  meta: { name: "list", description: "List built-in drivers and those found in drivers folders" },
  args: {
    output: { type: "string", alias: "o", description: "table, json, yaml or name", default: "table" },
    ...DRIVERS_DIR_ARG,
  },
  async run({ args }) {
    const [{ applyDriversDirArgs, loadDrivers }, { parseOutputFormat, printList }] = await Promise.all([import("./common.ts"), import("../common/output.ts")]);
    const format = parseOutputFormat(args.output);
    await applyDriversDirArgs(args);
    const { catalog, folders } = await loadDrivers();
    const rows = catalog.entries().map((e) => ({
      name: e.name,
      types: e.types,
      client: e.driver.client,
      summary: e.driver.summary ?? "",
      config: Object.fromEntries(Object.entries(e.driver.configShape).map(([k, f]) => [k, f.description ? `${f.expected}; ${f.description}` : f.expected])),
      source: e.source,
    }));
    printList(rows, format, [
      { header: "NAME", value: (r) => r.name },
      { header: "TYPE", value: (r) => r.types.find((t) => t.includes(".")) ?? r.types[0]! },
      { header: "SOURCE", value: (r) => r.source },
      { header: "DESCRIPTION", value: (r) => r.summary },
    ], (r) => r.name);
    for (const f of folders.files) {
      if (f.drivers.length === 0 && f.clients.length === 0) console.error(`note: ${f.file} exports no Driver or DriverClient classes`);
    }
    for (const s of folders.shadowed) console.error(`note: ${s.file} is not loaded: ${s.by} has the same name and comes first`);
    for (const b of folders.broken) console.error(`Error: ${b.file}: ${b.message}`);
    if (folders.broken.length) process.exitCode = 1;
  },
});

export default defineCommand({
  meta: META.driver,
  subCommands: { list },
});
