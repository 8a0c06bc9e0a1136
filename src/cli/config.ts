/** `jmp config exporter create|list|delete`: exporter configs in the user's config directory. */
import { defineCommand } from "citty";

const create = defineCommand({
  meta: { name: "create", description: "Write an exporter config (from a file, or a skeleton with an empty export:)" },
  args: {
    alias: { type: "positional", description: "name of the config", required: true },
    from: { type: "string", description: "copy this exporter config file (checked first)", valueHint: "FILE" },
    endpoint: { type: "string", alias: "e", description: "controller endpoint HOST:PORT" },
    token: { type: "string", alias: "t", description: "exporter token" },
    namespace: { type: "string", description: "namespace", default: "default" },
    name: { type: "string", description: "exporter name (default: the alias)" },
    force: { type: "boolean", description: "overwrite an existing config" },
  },
  async run({ args }) {
    const [{ existsSync }, { join }, ec, paths, { readYamlFile }, { UserError }, cat] = await Promise.all([
      import("node:fs"), import("node:path"), import("../common/exporter-config.ts"), import("../common/paths.ts"),
      import("../common/yaml-file.ts"), import("../common/errors.ts"), import("./common.ts"),
    ]);
    paths.checkAlias(args.alias, "exporter alias");
    const target = join(paths.exporterConfigDirs()[0]!, `${args.alias}.yaml`);
    if (existsSync(target) && !args.force) throw new UserError(`${target} exists; pass --force to overwrite`, 2);
    let doc: Record<string, unknown>;
    if (args.from) {
      const parsed = ec.parseExporterConfig(readYamlFile(args.from), args.from);
      // Check the drivers too: a config that cannot start should not be saved.
      const { buildDriverTree } = await import("../driver/build.ts");
      const root = buildDriverTree(parsed, await cat.loadCatalog());
      const { Dispatcher } = await import("../driver/dispatch.ts");
      await new Dispatcher(root).close();
      doc = readYamlFile(args.from) as Record<string, unknown>;
    } else {
      doc = {
        apiVersion: ec.API_VERSION,
        kind: "ExporterConfig",
        metadata: { namespace: args.namespace, name: args.name ?? args.alias },
        endpoint: args.endpoint ?? "",
        token: args.token ?? "",
        export: {},
      };
    }
    console.log(ec.writeExporterConfig(args.alias, doc));
  },
});

const list = defineCommand({
  meta: { name: "list", description: "List exporter configs" },
  args: { output: { type: "string", alias: "o", description: "table, json, yaml or name", default: "table" } },
  async run({ args }) {
    const [{ listExporterConfigs }, { parseOutputFormat, printList }] = await Promise.all([
      import("../common/exporter-config.ts"), import("../common/output.ts"),
    ]);
    const format = parseOutputFormat(args.output);
    printList(listExporterConfigs(), format, [
      { header: "ALIAS", value: (r) => r.alias },
      { header: "PATH", value: (r) => r.file },
      { header: "WRITABLE", value: (r) => (r.readOnly ? "no" : "yes") },
    ], (r) => r.alias);
  },
});

const remove = defineCommand({
  meta: { name: "delete", description: "Delete an exporter config", alias: ["rm", "del"] },
  args: { alias: { type: "positional", description: "name of the config", required: true } },
  async run({ args }) {
    const { deleteExporterConfig } = await import("../common/exporter-config.ts");
    console.log(`deleted ${deleteExporterConfig(args.alias)}`);
  },
});

const exporter = defineCommand({
  meta: { name: "exporter", description: "Exporter configs", alias: ["exporters", "e"] },
  subCommands: { create, list, delete: remove },
});

export default defineCommand({
  meta: { name: "config", description: "Manage configs", alias: "conf" },
  subCommands: { exporter },
});
