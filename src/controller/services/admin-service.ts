/** AdminService (ours): register clients and exporters, list and delete them, take exporters out of service and back. */
import { timestampFromDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { type AdminService } from "../../gen/jumpstarter/admin/v1/admin_pb.ts";
import type { TokenAuthority } from "../auth.ts";
import { healthMessage, leaseMessage } from "../convert.ts";
import type { Exporter } from "../model.ts";
import type { ControllerState } from "../state.ts";
import { rpc } from "./errors.ts";
import { adminActor, auditHandler } from "./audit-admin.ts";
import { policyHandlers } from "./policy-admin.ts";

export interface AdminDeps {
  state: ControllerState;
  authority: TokenAuthority;
  /** The endpoint written into new configs. */
  endpoint: string;
  caPem: string;
}

const ns = (n: string) => n || "default";

export function adminService(deps: AdminDeps): ServiceImpl<typeof AdminService> {
  const { state, authority } = deps;
  const credential = async (kind: "Client" | "Exporter", namespace: string, name: string, uid: string, tokenId: string) => {
    const issued = await authority.issue({ kind, namespace, name, uid, tokenId });
    return {
      namespace, name, endpoint: deps.endpoint, token: issued.token, caPem: deps.caPem,
      tokenExpiry: timestampFromDate(new Date(issued.expiresAt)),
    };
  };
  return {
    createClient: (req, ctx) => rpc(async () => {
      const c = await state.createClient(ns(req.namespace), req.name, req.labels, adminActor(ctx));
      return credential("Client", c.namespace, c.name, c.uid, c.tokenId);
    }),
    createExporter: (req, ctx) => rpc(async () => {
      const e = await state.createExporter(ns(req.namespace), req.name, req.labels, adminActor(ctx));
      return credential("Exporter", e.namespace, e.name, e.uid, e.tokenId);
    }),
    listClients: (req) => rpc(() => ({
      clients: state.listClients(ns(req.namespace)).map((c) => ({
        namespace: c.namespace, name: c.name, labels: c.labels, createdAt: timestampFromMs(c.createdAt),
      })),
    })),
    listExporters: (req) => rpc(() => ({ exporters: state.listExporters(ns(req.namespace)).map(exporterInfo) })),
    listLeases: (req) => rpc(() => ({
      leases: state.listLeases(ns(req.namespace), { onlyActive: !req.includeEnded }).map((l) => leaseMessage(l)),
    })),
    deleteClient: (req, ctx) => rpc(async () => {
      await state.deleteClient(ns(req.namespace), req.name, adminActor(ctx));
      return {};
    }),
    deleteExporter: (req, ctx) => rpc(async () => {
      await state.deleteExporter(ns(req.namespace), req.name, adminActor(ctx));
      return {};
    }),
    disableExporter: (req, ctx) => rpc(async () => exporterInfo(await state.disableExporter(ns(req.namespace), req.name, req.reason, adminActor(ctx)))),
    enableExporter: (req, ctx) => rpc(async () => exporterInfo(await state.enableExporter(ns(req.namespace), req.name, adminActor(ctx)))),
    ...policyHandlers(state),
    listAudit: auditHandler(state),
  };
}

function exporterInfo(e: Exporter) {
  return {
    namespace: e.namespace, name: e.name, labels: e.labels, status: e.status, online: e.online,
    lease: e.leaseName ?? "", lastSeen: e.lastSeen !== null ? timestampFromMs(e.lastSeen) : undefined,
    createdAt: timestampFromMs(e.createdAt),
    enabled: e.enabled, disabledReason: e.disabledReason, health: healthMessage(e.health),
  };
}
