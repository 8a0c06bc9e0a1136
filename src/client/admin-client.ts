/** The admin's connection to the controller's AdminService: the clients' transport, errors translated the same way. */
import { createClient } from "@connectrpc/connect";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type AccessPolicy, parseAccessPolicy, policyDocument } from "../common/access-policy.ts";
import type { AdminConfig } from "../common/client-config.ts";
import { AdminService, type AuditEvent, type Credential, type ExporterInfo } from "../gen/jumpstarter/admin/v1/admin_pb.ts";
import type { Lease } from "../gen/jumpstarter/client/v1/client_pb.ts";
import { ExporterStatus } from "../gen/jumpstarter/v1/common_pb.ts";
import { controllerTransport, translated } from "./controller.ts";
import { healthView } from "./exporter-health.ts";

export function connectAdmin(config: AdminConfig) {
  const addr = {
    endpoint: config.endpoint,
    token: config.token,
    namespace: config.metadata.namespace ?? "default",
    name: config.metadata.name ?? "admin",
    tls: config.tls,
    kind: "Admin" as const,
  };
  const { transport, close } = controllerTransport(addr);
  const admin = translated(createClient(AdminService, transport), {
    what: "the controller", address: config.endpoint, caHint: `tls.ca in the admin config ${config.file}`,
  });
  return {
    createClient: (namespace: string, name: string, labels: Record<string, string>): Promise<Credential> =>
      admin.createClient({ namespace, name, labels }),
    createExporter: (namespace: string, name: string, labels: Record<string, string>): Promise<Credential> =>
      admin.createExporter({ namespace, name, labels }),
    listClients: async (namespace: string) =>
      (await admin.listClients({ namespace })).clients.map((c) => ({
        name: c.name, labels: c.labels, createdAt: c.createdAt ? timestampDate(c.createdAt) : undefined,
      })),
    listExporters: async (namespace: string) => (await admin.listExporters({ namespace })).exporters.map(exporterView),
    disableExporter: async (namespace: string, name: string, reason: string) => exporterView(await admin.disableExporter({ namespace, name, reason })),
    enableExporter: async (namespace: string, name: string) => exporterView(await admin.enableExporter({ namespace, name })),
    listLeases: async (namespace: string, includeEnded: boolean): Promise<Lease[]> =>
      (await admin.listLeases({ namespace, includeEnded })).leases,
    /** Applies all of `policies` or none; answers their names. */
    applyPolicies: async (namespace: string, policies: readonly AccessPolicy[]): Promise<string[]> =>
      (await admin.applyPolicies({ namespace, policiesJson: policies.map((p) => JSON.stringify(policyDocument(p))) })).names,
    listPolicies: async (namespace: string): Promise<AccessPolicy[]> =>
      (await admin.listPolicies({ namespace })).policiesJson.map((json) => parseAccessPolicy(JSON.parse(json), namespace)),
    deletePolicy: (namespace: string, name: string) => admin.deletePolicy({ namespace, name }),
    /** The audit log, oldest first (AuditQuery on the controller says what each filter matches). */
    listAudit: async (namespace: string, q: { since?: Date; client?: string; exporter?: string; lease?: string; limit?: number }): Promise<AuditView[]> =>
      (await admin.listAudit({
        namespace, since: q.since ? timestampFromDate(q.since) : undefined,
        client: q.client ?? "", exporter: q.exporter ?? "", lease: q.lease ?? "", limit: q.limit ?? 0,
      })).events.map(auditView),
    deleteClient: (namespace: string, name: string) => admin.deleteClient({ namespace, name }),
    deleteExporter: (namespace: string, name: string) => admin.deleteExporter({ namespace, name }),
    close,
  };
}

/** One audit entry as `jmp admin audit -o json` prints it: empty fields left out. */
export interface AuditView {
  time: string;
  namespace?: string;
  action: string;
  actor: string;
  lease?: string;
  client?: string;
  exporter?: string;
  reason?: string;
  detail?: string;
}

function auditView(e: AuditEvent): AuditView {
  const view: AuditView = { time: e.time ? timestampDate(e.time).toISOString() : "", action: e.action, actor: e.actor };
  for (const k of ["namespace", "lease", "client", "exporter", "reason", "detail"] as const) if (e[k]) view[k] = e[k];
  return view;
}

function exporterView(e: ExporterInfo) {
  return {
    name: e.name,
    labels: e.labels,
    online: e.online,
    status: ExporterStatus[e.status]?.replace(/^EXPORTER_STATUS_/, "") ?? String(e.status),
    lease: e.lease,
    lastSeen: e.lastSeen ? timestampDate(e.lastSeen) : undefined,
    enabled: e.enabled,
    disabledReason: e.disabledReason,
    health: healthView(e.health),
  };
}
