/**
 * `jmp exporter list`: the exporters this client may see, optionally with status
 * and leases; disabled ones with the admin's reason (ENABLED) and, for exporters
 * that run a health check, its result (HEALTH).
 */
import { defineCommand } from "../common/command.ts";
import { UserError } from "../common/errors.ts";
import { repeatable } from "../common/repeatable.ts";
import { CLIENT_ARGS, controllerFromArgs, listArg, selectorArg } from "./client-context.ts";

const WITH = ["leases", "status", "online"];

export default defineCommand({
  meta: { name: "list", description: "List exporters (--with leases,status)" },
  args: {
    ...CLIENT_ARGS,
    selector: repeatable({ type: "string", alias: "l", description: "label selector" }),
    with: repeatable({ type: "string", description: "extra columns: leases, status, online (comma-separated)" }),
    pageSize: { type: "string", description: "page size for each request (all pages are fetched)" },
    output: { type: "string", alias: "o", description: "table, json, yaml or name", default: "table" },
  },
  async run({ args }) {
    const extra = listArg(args.with).flatMap((w) => w.split(",")).map((w) => w.trim()).filter(Boolean);
    for (const w of extra) if (!WITH.includes(w)) throw new UserError(`'--with' takes ${WITH.join(", ")}: got '${w}'`, 2);
    const pageSize = args.pageSize === undefined ? 0 : Number(args.pageSize);
    if (!Number.isInteger(pageSize) || pageSize < 0) throw new UserError(`'--page-size' must be a whole number: got '${args.pageSize}'`, 2);
    const c = await controllerFromArgs(args);
    const [{ LeaseApi }, { parseOutputFormat, printList }, { ExporterStatus }, { enabledColumn, healthColumn, healthView }] = await Promise.all([
      import("../client/leases.ts"), import("../common/output.ts"), import("../gen/jumpstarter/v1/common_pb.ts"),
      import("../client/exporter-health.ts"),
    ]);
    const format = parseOutputFormat(args.output);
    const api = new LeaseApi(c);
    const selector = selectorArg(args.selector);
    const exporters = await api.exporters({ filter: selector, pageSize });
    const leases = extra.includes("leases") ? await api.list({ onlyActive: true }) : [];
    const rows = exporters.map((e) => {
      const name = e.name.split("/").pop()!;
      const lease = leases.find((l) => l.exporter === name && l.state === "Ready");
      const labels = Object.entries(e.labels).filter(([k]) => !k.startsWith("jumpstarter.dev/")).map(([k, v]) => `${k}=${v}`).join(",");
      const status = ExporterStatus[e.status]?.replace(/^EXPORTER_STATUS_/, "") ?? String(e.status);
      // Upstream's clients take an unset `enabled` for true.
      const enabled = e.enabled ?? true;
      const health = healthView(e.health);
      return {
        name, labels, status, online: e.status !== ExporterStatus.OFFLINE && e.status !== ExporterStatus.UNSPECIFIED, lease, exporter: e,
        enabled, disabledReason: e.disabledReason, health,
      };
    });
    const columns = [
      { header: "NAME", value: (r: (typeof rows)[number]) => r.name },
      { header: "LABELS", value: (r: (typeof rows)[number]) => r.labels },
    ];
    if (extra.includes("online")) columns.push({ header: "ONLINE", value: (r) => (r.online ? "yes" : "no") });
    if (extra.includes("status")) columns.push({ header: "STATUS", value: (r) => r.status });
    if (extra.includes("leases")) {
      columns.push({ header: "LEASED BY", value: (r) => r.lease?.client ?? "" });
      columns.push({ header: "LEASE", value: (r) => r.lease?.name ?? "" });
      columns.push({ header: "EXPIRES AT", value: (r) => r.lease?.expiresAt?.toISOString().replace(/\.\d+Z$/, "Z") ?? "" });
    }
    // Maintenance and health show once there is something to see: a disabled exporter, or one with a health check.
    if (rows.some((r) => !r.enabled)) columns.push({ header: "ENABLED", value: (r) => enabledColumn(r.enabled, r.disabledReason) });
    if (rows.some((r) => r.health)) columns.push({ header: "HEALTH", value: (r) => healthColumn(r.health) });
    printList(rows, format, columns, (r) => r.name, (r) => ({
      name: r.name, labels: r.exporter.labels, status: r.status, online: r.online,
      enabled: r.enabled, disabledReason: r.disabledReason, health: r.health ?? null,
      ...(extra.includes("leases") ? { lease: r.lease ? { name: r.lease.name, client: r.lease.client, expiresAt: r.lease.expiresAt } : null } : {}),
    }));
  },
});
