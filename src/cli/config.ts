/** `jmp config exporter create|list|delete`: exporter configs in the user's config directory. */
import { defineCommand } from "../common/command.ts";
import { META } from "./command-meta.ts";
import { DRIVERS_ARGS, driversFromArgs } from "./client-context.ts";

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
      const root = buildDriverTree(parsed, await cat.loadCatalog({ config: parsed }));
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

const clientCreate = defineCommand({
  meta: { name: "create", description: "Write a client config (the first one becomes the current client)" },
  args: {
    alias: { type: "positional", description: "name of the config", required: true },
    endpoint: { type: "string", alias: "e", description: "controller HOST:PORT", required: true },
    token: { type: "string", alias: "t", description: "the client's token", required: true },
    namespace: { type: "string", description: "namespace", default: "default" },
    name: { type: "string", description: "client name (default: taken from the token)" },
    ca: { type: "string", description: "CA certificate (PEM) of the controller", valueHint: "FILE" },
    insecure: { type: "boolean", description: "do not verify the controller's certificate" },
    ...DRIVERS_ARGS,
    force: { type: "boolean", description: "overwrite an existing config" },
  },
  async run({ args }) {
    const [{ existsSync, readFileSync }, cc, { UserError }] = await Promise.all([
      import("node:fs"), import("../common/client-config.ts"), import("../common/errors.ts"),
    ]);
    if (existsSync(cc.clientConfigFile(args.alias)) && !args.force) {
      throw new UserError(`${cc.clientConfigFile(args.alias)} exists; pass --force to overwrite`, 2);
    }
    let ca: string | undefined;
    if (args.ca) {
      try {
        ca = Buffer.from(readFileSync(args.ca, "utf8")).toString("base64");
      } catch (e) {
        throw new UserError(`--ca ${args.ca}: ${(e as Error).message}`, 2);
      }
    }
    const file = cc.writeClientConfig(args.alias, {
      metadata: { namespace: args.namespace, name: args.name },
      endpoint: args.endpoint,
      token: args.token,
      tls: { ca, insecure: Boolean(args.insecure) },
      drivers: driversFromArgs(args),
    });
    console.log(file);
  },
});

const clientUse = defineCommand({
  meta: { name: "use", description: "Make a client config the current one" },
  args: { alias: { type: "positional", description: "name of the config", required: true } },
  async run({ args }) {
    const cc = await import("../common/client-config.ts");
    cc.useClientConfig(args.alias);
    console.log(`current client: ${args.alias}`);
  },
});

const clientList = defineCommand({
  meta: { name: "list", description: "List client configs (* marks the current one)" },
  args: { output: { type: "string", alias: "o", description: "table, json, yaml or name", default: "table" } },
  async run({ args }) {
    const [cc, { parseOutputFormat, printList }] = await Promise.all([import("../common/client-config.ts"), import("../common/output.ts")]);
    printList(cc.listClientConfigs(), parseOutputFormat(args.output), [
      { header: "CURRENT", value: (r) => (r.current ? "*" : "") },
      { header: "ALIAS", value: (r) => r.alias },
      { header: "ENDPOINT", value: (r) => r.endpoint ?? (r.error ? `(broken: ${r.error})` : "") },
      { header: "PATH", value: (r) => r.file },
    ], (r) => r.alias);
  },
});

const clientDelete = defineCommand({
  meta: { name: "delete", description: "Delete a client config", alias: ["rm", "del"] },
  args: { alias: { type: "positional", description: "name of the config", required: true } },
  async run({ args }) {
    const cc = await import("../common/client-config.ts");
    console.log(`deleted ${cc.deleteClientConfig(args.alias)}`);
  },
});

const client = defineCommand({
  meta: { name: "client", description: "Client configs", alias: ["clients", "c"] },
  subCommands: { create: clientCreate, use: clientUse, list: clientList, delete: clientDelete },
});

export default defineCommand({
  meta: META.config,
  subCommands: { client, exporter },
});
