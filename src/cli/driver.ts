/** `jmp driver list`: the drivers this executable can run. */
import { defineCommand } from "citty";

const list = defineCommand({
  meta: { name: "list", description: "List built-in drivers and those found in drivers folders" },
  args: { output: { type: "string", alias: "o", description: "table, json, yaml or name", default: "table" } },
  async run({ args }) {
    const [{ loadCatalog }, { parseOutputFormat, printList }] = await Promise.all([import("./common.ts"), import("../common/output.ts")]);
    const format = parseOutputFormat(args.output);
    const catalog = await loadCatalog();
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
  },
});

export default defineCommand({
  meta: { name: "driver", description: "Drivers", alias: ["drivers"] },
  subCommands: { list },
});
