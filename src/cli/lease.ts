/** `jmp lease create|list|get|update|delete` (and upstream's verb-first spellings). */
import { defineCommand } from "../common/command.ts";
import { META } from "./command-meta.ts";
import { UserError } from "../common/errors.ts";
import { repeatable } from "../common/repeatable.ts";
import { CLIENT_ARGS, controllerFromArgs, keyValues, listArg, selectorArg } from "./client-context.ts";
import type { LeaseView } from "../client/leases.ts";
import { leaseLogs } from "./lease-logs.ts";

const OUTPUT = { output: { type: "string", alias: "o", description: "table, json, yaml or name", default: "table" } } as const;

async function api(args: { client?: string; clientConfig?: string }) {
  const [c, { LeaseApi }] = await Promise.all([controllerFromArgs(args), import("../client/leases.ts")]);
  return { leases: new LeaseApi(c), me: c.address.name };
}

const leaseOptions = () => import("../client/lease-options.ts");

function remaining(v: LeaseView, now = Date.now()): string {
  if (!v.expiresAt || v.state !== "Ready") return "";
  const ms = v.expiresAt.getTime() - now;
  if (ms <= 0) return "expired";
  const s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  return h ? `${h}h${m}m` : m ? `${m}m${s % 60}s` : `${s}s`;
}

async function printLeases(rows: LeaseView[], output: string | undefined): Promise<void> {
  const { parseOutputFormat, printList } = await import("../common/output.ts");
  printList(rows, parseOutputFormat(output), [
    { header: "NAME", value: (r) => r.name },
    { header: "SELECTOR", value: (r) => r.selector || (r.exporterName ? `(exporter ${r.exporterName})` : "") },
    { header: "EXPORTER", value: (r) => r.exporter ?? "" },
    { header: "CLIENT", value: (r) => r.client ?? "" },
    { header: "STATE", value: (r) => (r.reason && r.state !== "Ready" ? `${r.state} (${r.reason})` : r.state) },
    { header: "EXPIRES AT", value: (r) => (r.expiresAt ? r.expiresAt.toISOString().replace(/\.\d+Z$/, "Z") : "") },
    { header: "REMAINING", value: (r) => remaining(r) },
  ], (r) => r.name);
}

export const createLease = defineCommand({
  meta: { name: "create", description: "Create a lease on an exporter matching a selector (or a named exporter)" },
  args: {
    ...CLIENT_ARGS,
    selector: repeatable({ type: "string", alias: "l", description: "label selector, e.g. board=rpi4" }),
    name: { type: "string", alias: "n", description: "lease this exporter" },
    duration: { type: "string", description: "how long, e.g. 30m, 1h30m, PT2H", required: true },
    beginTime: { type: "string", description: "start later (ISO-8601 time)" },
    tag: repeatable({ type: "string", description: "KEY=VALUE tag" }),
    context: repeatable({ type: "string", description: "KEY=VALUE context for the exporter (at most 8)" }),
    leaseId: { type: "string", description: "the lease's name (default: a new UUIDv7)" },
    allowDisabled: { type: "boolean", description: "allow a disabled exporter (with -n)" },
    ...OUTPUT,
  },
  async run({ args }) {
    const selector = selectorArg(args.selector);
    if (!selector && !args.name) throw new UserError("give a selector (-l board=rpi4) or an exporter (-n NAME)", 2);
    const { leaseDuration, beginTime } = await leaseOptions();
    const durationMs = leaseDuration(String(args.duration), "--duration");
    const begin = beginTime(args.beginTime, "--begin-time");
    const { leases } = await api(args);
    // A controller restarting or failing over is waited for, saying so once per new reason;
    // a retry whose first try's answer was lost gets that lease, not a second one.
    let said = "";
    const lease = await leases.createRetrying({
      selector, exporterName: args.name, durationMs, beginTime: begin,
      tags: keyValues(args.tag, "--tag"), context: keyValues(args.context, "--context"),
      leaseId: args.leaseId, allowDisabled: args.allowDisabled,
    }, {
      onWait: (why) => {
        if (why !== said) console.error((said = why));
      },
    });
    // The controller ends at once a lease nothing can ever serve: say why, and fail.
    if (lease.state === "Unsatisfiable" || lease.state === "Invalid") {
      const { LeaseEndedError } = await import("../client/leases.ts");
      throw new LeaseEndedError(lease);
    }
    await printLeases([lease], args.output);
  },
});

export const listLeases = defineCommand({
  meta: { name: "list", description: "List your leases (-A: everyone's)" },
  args: {
    ...CLIENT_ARGS,
    selector: repeatable({ type: "string", alias: "l", description: "only leases whose selector includes these labels" }),
    all: { type: "boolean", alias: "a", description: "include ended leases" },
    allClients: { type: "boolean", alias: "A", description: "leases of every client" },
    pageSize: { type: "string", description: "page size for each request (all pages are fetched)" },
    ...OUTPUT,
  },
  async run({ args }) {
    const { leases, me } = await api(args);
    const pageSize = args.pageSize === undefined ? 0 : Number(args.pageSize);
    if (!Number.isInteger(pageSize) || pageSize < 0) throw new UserError(`'--page-size' must be a whole number: got '${args.pageSize}'`, 2);
    // The controller filters by selector; by client we filter here, as upstream does
    // (ListLeases answers every client's leases, so that -A can show them).
    let rows = await leases.list({ onlyActive: !args.all, pageSize, filter: selectorArg(args.selector) });
    if (!args.allClients) rows = rows.filter((r) => r.client === me);
    await printLeases(rows, args.output);
  },
});

export const getLease = defineCommand({
  meta: { name: "get", description: "Show one lease with its conditions" },
  args: { ...CLIENT_ARGS, lease: { type: "positional", description: "lease name", required: true }, ...OUTPUT },
  async run({ args }) {
    const { leases } = await api(args);
    const v = await leases.get(args.lease);
    if (args.output && args.output !== "table") return printLeases([v], args.output);
    await printLeases([v], "table");
    for (const c of v.conditions) console.log(`  ${c.type}=${c.status}${c.reason ? ` ${c.reason}` : ""}${c.message ? `: ${c.message}` : ""}`);
    const { standingText } = await import("../client/leases.ts");
    const standing = standingText(v);
    if (standing) console.log(`  queue: ${standing}`);
    if (v.priority !== undefined || v.spotAccess) console.log(`  access: priority ${v.priority ?? 0}${v.spotAccess ? ", spot (ended early if a non-spot lease needs the exporter)" : ""}`);
  },
});

export const updateLease = defineCommand({
  meta: { name: "update", description: "Change a lease's duration, extend it, or hand it to another client" },
  args: {
    ...CLIENT_ARGS,
    lease: { type: "positional", description: "lease name", required: true },
    duration: { type: "string", description: "the new total duration" },
    extend: { type: "string", description: "add this much to the current duration" },
    beginTime: { type: "string", description: "a new begin time (before the lease starts)" },
    toClient: { type: "string", description: "transfer the lease to this client" },
    ...OUTPUT,
  },
  async run({ args }) {
    if (args.duration && args.extend) throw new UserError("give --duration or --extend, not both", 2);
    const { leaseDuration, beginTime } = await leaseOptions();
    const total = args.duration ? leaseDuration(args.duration, "--duration") : undefined;
    const extra = args.extend ? leaseDuration(args.extend, "--extend") : undefined;
    const begin = beginTime(args.beginTime, "--begin-time");
    if (total === undefined && extra === undefined && !begin && !args.toClient) {
      throw new UserError("nothing to change: give --duration, --extend, --begin-time or --to-client", 2);
    }
    const { leases } = await api(args);
    const durationMs = extra === undefined ? total : ((await leases.get(args.lease)).durationMs ?? 0) + extra;
    await printLeases([await leases.update(args.lease, { durationMs, beginTime: begin, client: args.toClient })], args.output);
  },
});

export const deleteLease = defineCommand({
  meta: { name: "delete", description: "Release leases", alias: ["del", "d", "release"] },
  args: {
    ...CLIENT_ARGS,
    leases: { type: "positional", description: "lease names", required: false },
    all: { type: "boolean", description: "release all your active leases" },
    ...OUTPUT,
  },
  async run({ args }) {
    const names = listArg(args._);
    if (args.all && names.length) throw new UserError("give lease names or --all, not both", 2);
    if (!args.all && names.length === 0) throw new UserError("name the leases to release, or pass --all", 2);
    const { leases, me } = await api(args);
    const targets = args.all ? (await leases.list({ onlyActive: true })).filter((l) => l.client === me).map((l) => l.name) : names;
    for (const name of targets) {
      const done = await leases.release(name);
      console.log(args.output === "name" ? name : done === "released" ? `released ${name}` : `${name} was already released`);
    }
  },
});

export default defineCommand({
  meta: META.lease,
  subCommands: { create: createLease, list: listLeases, get: getLease, update: updateLease, delete: deleteLease, logs: leaseLogs },
});
