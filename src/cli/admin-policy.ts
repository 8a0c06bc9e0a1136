/** `jmp admin policy`: ExporterAccessPolicies in upstream's YAML kind — apply from a file, list, delete. */
import { defineCommand } from "../common/command.ts";
import { UserError } from "../common/errors.ts";
import { ADMIN_ARGS, adminClient } from "./admin-context.ts";

const apply = defineCommand({
  meta: { name: "apply", description: "Create or replace the ExporterAccessPolicies in a YAML file (all of them, or none on an error)" },
  args: {
    ...ADMIN_ARGS,
    file: { type: "string", alias: "f", description: "the YAML file (several documents, or a List); - for standard input", valueHint: "FILE", required: true },
  },
  async run({ args }) {
    const [{ readFileSync }, { parseAccessPolicyFile }] = await Promise.all([import("node:fs"), import("../common/access-policy.ts")]);
    const file = args.file === "-" ? "<stdin>" : args.file;
    let text: string;
    try {
      text = readFileSync(args.file === "-" ? 0 : args.file, "utf8");
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new UserError(`${file}: ${code === "ENOENT" ? "no such file" : code === "EISDIR" ? "is a directory, expected a YAML file" : (e as Error).message}`, 2);
    }
    const policies = parseAccessPolicyFile(text, file, args.namespace);
    const admin = await adminClient(args);
    for (const namespace of new Set(policies.map((p) => p.namespace))) {
      const names = await admin.applyPolicies(namespace, policies.filter((p) => p.namespace === namespace));
      for (const name of names) console.log(`exporteraccesspolicy ${namespace}/${name} applied`);
    }
  },
});

const list = defineCommand({
  meta: { name: "list", description: "The namespace's ExporterAccessPolicies", alias: ["ls", "get"] },
  args: { ...ADMIN_ARGS, output: { type: "string", alias: "o", description: "table, json, yaml or name", default: "table" } },
  async run({ args }) {
    const [{ parseOutputFormat, printList }, { policyDocument }, { formatSelector }, { formatDuration }] = await Promise.all([
      import("../common/output.ts"), import("../common/access-policy.ts"), import("../common/selector.ts"), import("../common/duration.ts"),
    ]);
    const format = parseOutputFormat(args.output);
    const admin = await adminClient(args);
    const policies = await admin.listPolicies(args.namespace);
    printList(policies, format, [
      { header: "NAME", value: (p) => p.name },
      { header: "EXPORTERS", value: (p) => formatSelector(p.exporterSelector) || "(all)" },
      {
        header: "RULES",
        value: (p) => p.policies.map((r) => [
          r.from.map((s) => formatSelector(s) || "every client").join(" or ") || "nobody",
          `priority ${r.priority}`,
          ...(r.maximumDurationMs !== undefined ? [`max ${formatDuration(r.maximumDurationMs)}`] : []),
          ...(r.spotAccess ? ["spot"] : []),
        ].join(", ")).join("; "),
      },
    ], (p) => p.name, policyDocument);
  },
});

const remove = defineCommand({
  meta: { name: "delete", description: "Delete an ExporterAccessPolicy", alias: ["rm"] },
  args: { name: { type: "positional", description: "policy name", required: true }, ...ADMIN_ARGS },
  async run({ args }) {
    const admin = await adminClient(args);
    await admin.deletePolicy(args.namespace, args.name);
    console.log(`deleted exporteraccesspolicy ${args.namespace}/${args.name}`);
  },
});

export const policyCommand = defineCommand({
  meta: { name: "policy", description: "ExporterAccessPolicies: who may lease which exporters, at what priority, for how long" },
  subCommands: { apply, list, delete: remove },
});
