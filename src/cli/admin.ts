/** `jmp admin`: register clients and exporters, inspect and remove them, take exporters out of service. */
import { defineCommand } from "../common/command.ts";
import { META } from "./command-meta.ts";
import { UserError } from "../common/errors.ts";
import { repeatable } from "../common/repeatable.ts";
import { DRIVERS_ARGS, driversFromArgs, keyValues } from "./client-context.ts";
import type { Credential } from "../gen/jumpstarter/admin/v1/admin_pb.ts";
import { stdout } from "../common/stdout.ts";

import { ADMIN_ARGS, adminClient } from "./admin-context.ts";
import { policyCommand } from "./admin-policy.ts";

const OUT_ARGS = {
  labels: repeatable({ type: "string", alias: "l", description: "KEY=VALUE label" }),
  out: { type: "string", description: "write the config to this file", valueHint: "FILE" },
  save: { type: "boolean", description: "save the config under the name (jmp config … list shows it)" },
} as const;

type Kind = "client" | "exporter";

/**
 * Where the new config goes (`--out FILE`, `--save`, else stdout), checked before
 * anything is registered: a token the controller issued and nobody received is
 * a principal nobody can use, and its name is taken.
 */
async function destination(args: { out?: string; save?: boolean; name: string }, kind: Kind): Promise<(doc: Record<string, unknown>) => void> {
  if (args.out && args.save) throw new UserError("give --out FILE or --save, not both", 2);
  const [{ checkWritable, writeFileAtomic }, { stringify }] = await Promise.all([import("../common/yaml-file.ts"), import("yaml")]);
  if (args.out) {
    const out = args.out;
    checkWritable(out, "--out");
    return (doc) => {
      writeFileAtomic(out, stringify(doc));
      console.log(out);
    };
  }
  if (args.save) {
    const [{ join }, paths, cc, ec] = await Promise.all([
      import("node:path"), import("../common/paths.ts"), import("../common/client-config.ts"), import("../common/exporter-config.ts"),
    ]);
    const file = kind === "client" ? cc.clientConfigFile(args.name) : join(paths.exporterConfigDirs()[0]!, `${paths.checkAlias(args.name, "exporter alias")}.yaml`);
    checkWritable(file, "--save:");
    return (doc) => console.log(kind === "client" ? cc.writeClientConfig(args.name, cc.parseClientConfig(doc, file)) : ec.writeExporterConfig(args.name, doc));
  }
  return (doc) => stdout().write(stringify(doc));
}

/** Registers a principal, then writes its config; if that write fails, the principal is removed again. */
async function register(
  args: { name: string; namespace: string; out?: string; save?: boolean; labels?: unknown; adminConfig?: string; dataDir?: string },
  kind: Kind,
  document: (cred: Credential) => Record<string, unknown>,
): Promise<void> {
  const write = await destination(args, kind);
  const labels = keyValues(args.labels, "--labels");
  const admin = await adminClient(args);
  const cred = await (kind === "client" ? admin.createClient(args.namespace, args.name, labels) : admin.createExporter(args.namespace, args.name, labels));
  try {
    write(document(cred));
  } catch (e) {
    const removal = kind === "client" ? admin.deleteClient(args.namespace, args.name) : admin.deleteExporter(args.namespace, args.name);
    const undone = await removal.then(() => true, () => false);
    throw new UserError(
      `${(e as Error).message}; ${undone
        ? `${kind} ${args.name} was registered and removed again, so the same command can be run once the path is fixed`
        : `${kind} ${args.name} is registered but its config was not written: remove it with 'jmp admin delete ${kind} ${args.name}' and run the command again`}`,
      1,
    );
  }
}

const createClient = defineCommand({
  meta: { name: "client", description: "Register a client and write its ClientConfig (endpoint, token, CA, allowed driver clients)" },
  args: {
    name: { type: "positional", description: "client name", required: true },
    ...OUT_ARGS,
    ...DRIVERS_ARGS,
    ...ADMIN_ARGS,
  },
  async run({ args }) {
    const drivers = driversFromArgs(args);
    const cc = await import("../common/client-config.ts");
    await register(args, "client", (cred) => cc.clientConfigDocument({
      metadata: { namespace: cred.namespace, name: cred.name },
      endpoint: cred.endpoint,
      token: cred.token,
      tls: { ca: Buffer.from(cred.caPem).toString("base64"), insecure: false },
      drivers,
    }));
  },
});

const createExporter = defineCommand({
  meta: { name: "exporter", description: "Register an exporter and write its ExporterConfig (endpoint, token, CA, empty export:)" },
  args: { name: { type: "positional", description: "exporter name", required: true }, ...OUT_ARGS, ...ADMIN_ARGS },
  async run({ args }) {
    await register(args, "exporter", (cred) => ({
      apiVersion: "jumpstarter.dev/v1alpha1",
      kind: "ExporterConfig",
      metadata: { namespace: cred.namespace, name: cred.name },
      endpoint: cred.endpoint,
      token: cred.token,
      tls: { ca: Buffer.from(cred.caPem).toString("base64"), insecure: false },
      export: {},
    }));
  },
});

const OUTPUT = { output: { type: "string", alias: "o", description: "table, json, yaml or name", default: "table" } } as const;

const getClients = defineCommand({
  meta: { name: "clients", description: "List clients", alias: "client" },
  args: { ...ADMIN_ARGS, ...OUTPUT },
  async run({ args }) {
    const admin = await adminClient(args);
    const { parseOutputFormat, printList } = await import("../common/output.ts");
    const rows = await admin.listClients(args.namespace);
    printList(rows, parseOutputFormat(args.output), [
      { header: "NAME", value: (r) => r.name },
      { header: "LABELS", value: (r) => Object.entries(r.labels).map(([k, v]) => `${k}=${v}`).join(",") },
      { header: "CREATED", value: (r) => r.createdAt?.toISOString().replace(/\.\d+Z$/, "Z") ?? "" },
    ], (r) => r.name);
  },
});

const getExporters = defineCommand({
  meta: { name: "exporters", description: "List exporters with their status and lease", alias: "exporter" },
  args: { ...ADMIN_ARGS, ...OUTPUT },
  async run({ args }) {
    const admin = await adminClient(args);
    const [{ parseOutputFormat, printList }, { enabledColumn, healthColumn }] = await Promise.all([
      import("../common/output.ts"), import("../client/exporter-health.ts"),
    ]);
    const rows = await admin.listExporters(args.namespace);
    printList(rows, parseOutputFormat(args.output), [
      { header: "NAME", value: (r) => r.name },
      { header: "LABELS", value: (r) => Object.entries(r.labels).filter(([k]) => !k.startsWith("jumpstarter.dev/")).map(([k, v]) => `${k}=${v}`).join(",") },
      { header: "ONLINE", value: (r) => (r.online ? "yes" : "no") },
      { header: "STATUS", value: (r) => r.status },
      { header: "LEASE", value: (r) => r.lease },
      { header: "LAST SEEN", value: (r) => r.lastSeen?.toISOString().replace(/\.\d+Z$/, "Z") ?? "" },
      { header: "ENABLED", value: (r) => enabledColumn(r.enabled, r.disabledReason) },
      { header: "HEALTH", value: (r) => healthColumn(r.health) },
    ], (r) => r.name);
  },
});

const disableExporter = defineCommand({
  meta: { name: "disable", description: "Maintenance: the exporter gets no new lease (the current one finishes); clients see the reason" },
  args: {
    name: { type: "positional", description: "exporter name", required: true },
    reason: { type: "string", description: "why, shown in 'jmp exporter list' and to leases that name it", required: true },
    ...ADMIN_ARGS,
  },
  async run({ args }) {
    const admin = await adminClient(args);
    const e = await admin.disableExporter(args.namespace, args.name, args.reason);
    console.log(`disabled exporter ${args.namespace}/${e.name}: ${e.disabledReason}${e.lease ? ` (its lease ${e.lease} goes on)` : ""}`);
  },
});

const enableExporter = defineCommand({
  meta: { name: "enable", description: "Back in service; also overrides a failed health check until the next check" },
  args: { name: { type: "positional", description: "exporter name", required: true }, ...ADMIN_ARGS },
  async run({ args }) {
    const admin = await adminClient(args);
    const e = await admin.enableExporter(args.namespace, args.name);
    const overridden = e.health?.state === "unhealthy" ? ` (its failed health check is overridden: ${e.health.message})` : "";
    console.log(`enabled exporter ${args.namespace}/${e.name}${overridden}`);
  },
});

const getLeases = defineCommand({
  meta: { name: "leases", description: "List leases of every client", alias: "lease" },
  args: { ...ADMIN_ARGS, all: { type: "boolean", alias: "a", description: "include ended leases" }, ...OUTPUT },
  async run({ args }) {
    const admin = await adminClient(args);
    const [{ parseOutputFormat, printList }, { leaseView }] = await Promise.all([import("../common/output.ts"), import("../client/leases.ts")]);
    const rows = (await admin.listLeases(args.namespace, Boolean(args.all))).map(leaseView);
    printList(rows, parseOutputFormat(args.output), [
      { header: "NAME", value: (r) => r.name },
      { header: "SELECTOR", value: (r) => r.selector || (r.exporterName ? `(exporter ${r.exporterName})` : "") },
      { header: "EXPORTER", value: (r) => r.exporter ?? "" },
      { header: "CLIENT", value: (r) => r.client ?? "" },
      { header: "STATE", value: (r) => (r.reason && r.state !== "Ready" ? `${r.state} (${r.reason})` : r.state) },
      { header: "EXPIRES AT", value: (r) => r.expiresAt?.toISOString().replace(/\.\d+Z$/, "Z") ?? "" },
    ], (r) => r.name);
  },
});

const deleteOne = (kind: "client" | "exporter") =>
  defineCommand({
    meta: { name: kind, description: `Delete a ${kind}; its tokens stop working at once` },
    args: { name: { type: "positional", description: `${kind} name`, required: true }, ...ADMIN_ARGS },
    async run({ args }) {
      const admin = await adminClient(args);
      await (kind === "client" ? admin.deleteClient(args.namespace, args.name) : admin.deleteExporter(args.namespace, args.name));
      console.log(`deleted ${kind} ${args.namespace}/${args.name}`);
    },
  });

export default defineCommand({
  meta: META.admin,
  subCommands: {
    create: defineCommand({ meta: { name: "create", description: "Register a client or an exporter" }, subCommands: { client: createClient, exporter: createExporter } }),
    get: defineCommand({ meta: { name: "get", description: "List clients, exporters or leases" }, subCommands: { clients: getClients, exporters: getExporters, leases: getLeases } }),
    delete: defineCommand({ meta: { name: "delete", description: "Delete a client or an exporter" }, subCommands: { client: deleteOne("client"), exporter: deleteOne("exporter") } }),
    exporter: defineCommand({
      meta: { name: "exporter", description: "Take an exporter out of service (maintenance) and back" },
      subCommands: { disable: disableExporter, enable: enableExporter },
    }),
    policy: policyCommand,
    audit: () => import("./admin-audit.ts").then((m) => m.default),
  },
});
