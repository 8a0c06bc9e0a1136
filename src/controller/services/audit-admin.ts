/** AdminService.ListAudit, and who an admin call is by, for the entries the other admin calls record. */
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import type { AdminService } from "../../gen/jumpstarter/admin/v1/admin_pb.ts";
import { type Actor, actorOf, type AuditQuery } from "../audit.ts";
import { identityOf } from "../auth.ts";
import { invalidArgument } from "../errors.ts";
import type { ControllerState } from "../state.ts";
import { rpc } from "./errors.ts";

/** A name longer than this is no name the controller ever gave out. */
const MAX_NAME = 253;

export function adminActor(ctx: HandlerContext): Actor {
  return actorOf("Admin", identityOf(ctx).name);
}

function name(value: string, field: string): string | undefined {
  if (value === "") return undefined;
  if (value.length > MAX_NAME) throw invalidArgument(`${field} must be at most ${MAX_NAME} characters: got ${value.length}`);
  return value;
}

export function auditHandler(state: ControllerState): ServiceImpl<typeof AdminService>["listAudit"] {
  return (req) => rpc(async () => {
    if (req.limit < 0) throw invalidArgument(`limit must not be negative: got ${req.limit}`);
    const query: AuditQuery = {
      namespace: req.namespace || "default",
      since: req.since ? timestampMs(req.since) : undefined,
      client: name(req.client, "client"),
      exporter: name(req.exporter, "exporter"),
      lease: name(req.lease, "lease"),
      limit: req.limit || undefined,
    };
    const entries = await state.listAudit(query);
    return {
      events: entries.map((e) => ({
        seq: BigInt(e.seq), time: timestampFromMs(e.at), namespace: e.namespace, action: e.action, actor: e.actor,
        lease: e.lease ?? "", client: e.client ?? "", exporter: e.exporter ?? "", reason: e.reason, detail: e.detail,
      })),
    };
  });
}
