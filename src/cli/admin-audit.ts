/** `jmp admin audit`: who did what to the lab, when and why — admin actions, each step of every lease, refused tokens. */
import { defineCommand } from "../common/command.ts";
import { parseDuration } from "../common/duration.ts";
import { UserError } from "../common/errors.ts";
import { ADMIN_ARGS, adminClient } from "./admin-context.ts";
import { wholeNumberArg } from "./common.ts";

/** `--since 1h` (that long ago) or a time (`2026-12-01T08:00:00Z`, `2026-12-01`). */
export function sinceTime(text: string, now = Date.now()): Date {
  try {
    return new Date(now - parseDuration(text, "--since"));
  } catch {
    // Not a duration: a time, if it parses as one.
  }
  const at = /^\d{4}-\d{2}-\d{2}/.test(text) ? Date.parse(text) : NaN;
  if (Number.isNaN(at)) {
    throw new UserError(`'--since' must be a duration back from now (30m, 1h, 7d) or a time (2026-12-01T08:00:00Z): got '${text}'`, 2);
  }
  return new Date(at);
}

export default defineCommand({
  meta: { name: "audit", description: "Show the audit log: admin actions, lease steps (create, acquire, extend, release, expire, revoke), refused tokens" },
  args: {
    ...ADMIN_ARGS,
    since: { type: "string", description: "only entries since then: a duration back from now (1h, 7d) or a time", valueHint: "WHEN" },
    client: { type: "string", description: "only entries about this client (holding the lease, or acting)", valueHint: "NAME" },
    exporter: { type: "string", description: "only entries about this exporter", valueHint: "NAME" },
    lease: { type: "string", description: "only entries about this lease", valueHint: "NAME" },
    limit: { type: "string", description: "the newest N entries (default and at most 10000)", valueHint: "N" },
    output: { type: "string", alias: "o", description: "table, json or yaml", default: "table" },
  },
  async run({ args }) {
    const { parseOutputFormat, printList } = await import("../common/output.ts");
    const format = parseOutputFormat(args.output, ["table", "json", "yaml"]);
    const since = args.since !== undefined ? sinceTime(args.since) : undefined;
    const limit = args.limit !== undefined ? wholeNumberArg(args.limit, "--limit", 1, 10_000) : undefined;
    const admin = await adminClient(args);
    const rows = await admin.listAudit(args.namespace, { since, client: args.client, exporter: args.exporter, lease: args.lease, limit });
    printList(rows, format, [
      { header: "TIME", value: (r) => r.time.replace(/\.\d+Z$/, "Z") },
      { header: "ACTION", value: (r) => r.action },
      { header: "ACTOR", value: (r) => r.actor },
      { header: "LEASE", value: (r) => r.lease ?? "" },
      { header: "CLIENT", value: (r) => r.client ?? "" },
      { header: "EXPORTER", value: (r) => r.exporter ?? "" },
      { header: "REASON", value: (r) => r.reason ?? "" },
      { header: "DETAIL", value: (r) => r.detail ?? "" },
    ], (r) => r.time);
  },
});
