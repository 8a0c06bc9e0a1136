/** ClientService (jumpstarter.client.v1): leases and exporters, as upstream's AIP-style API. */
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { durationMs, timestampMs } from "@bufbuild/protobuf/wkt";
import type { ClientService } from "../../gen/jumpstarter/client/v1/client_pb.ts";
import { identityOf, type TokenAuthority } from "../auth.ts";
import { exporterMessage, leaseMessage } from "../convert.ts";
import { parseParent, parseResourceName } from "../names.ts";
import { PRESENCE_TIMEOUT_RANGE_S } from "../lease-rules.ts";
import type { ControllerState } from "../state.ts";
import { rpc } from "./errors.ts";
import { pageOf } from "./paging.ts";

function caller(ctx: HandlerContext) {
  const id = identityOf(ctx);
  return { namespace: id.namespace, name: id.name, kind: id.kind };
}

function sameNamespace(ctx: HandlerContext, namespace: string): void {
  const me = caller(ctx);
  if (me.namespace !== namespace) {
    throw new ConnectError(`namespace '${namespace}' is not yours (you are in '${me.namespace}')`, Code.PermissionDenied);
  }
}

/**
 * Request metadata of CreateLease (ours): the lease is given back when its client makes
 * no call naming it for this many seconds. Without it, nothing changes (upstream's
 * clients, `jmp lease create`).
 */
export const PRESENCE_TIMEOUT_HEADER = "x-jmp-presence-timeout";

/**
 * The presence timeout in ms from CreateLease's metadata, if given; anything but
 * 5..3600 whole seconds is refused. The accepted value is echoed in the response
 * metadata.
 */
function presenceTimeoutOf(ctx: HandlerContext): number | undefined {
  const value = ctx.requestHeader.get(PRESENCE_TIMEOUT_HEADER);
  if (value === null) return undefined;
  const { min, max } = PRESENCE_TIMEOUT_RANGE_S;
  const seconds = /^\s*\d+\s*$/.test(value) ? Number(value) : NaN;
  if (!(seconds >= min && seconds <= max)) {
    throw new ConnectError(
      `metadata '${PRESENCE_TIMEOUT_HEADER}' must be a whole number of seconds from ${min} to ${max}: got '${value}'`,
      Code.InvalidArgument,
    );
  }
  // Said back, so a client can tell this controller enforces it (upstream's ignores it).
  ctx.responseHeader.set(PRESENCE_TIMEOUT_HEADER, String(seconds));
  return seconds * 1000;
}

export function clientService(state: ControllerState, authority: TokenAuthority): ServiceImpl<typeof ClientService> {
  return {
    getExporter: (req, ctx) => rpc(() => {
      const { namespace, name } = parseResourceName(req.name, "exporters", caller(ctx).namespace);
      sameNamespace(ctx, namespace);
      return exporterMessage(state.getExporter(namespace, name), req.showHiddenLabels);
    }),

    listExporters: (req, ctx) => rpc(() => {
      const namespace = parseParent(req.parent, caller(ctx).namespace);
      sameNamespace(ctx, namespace);
      const all = state.listExporters(namespace, { selector: req.filter || undefined });
      const page = pageOf(all, req.pageSize, req.pageToken, "ListExporters");
      return { exporters: page.items.map((e) => exporterMessage(e, req.showHiddenLabels)), nextPageToken: page.next };
    }),

    getLease: (req, ctx) => rpc(() => {
      const me = caller(ctx);
      const { namespace, name } = parseResourceName(req.name, "leases", me.namespace);
      sameNamespace(ctx, namespace);
      const lease = state.getLease(namespace, name, me.name);
      return leaseMessage(lease, Date.now(), lease.exporter === undefined && !lease.ended ? state.queueStanding(namespace, name) : undefined);
    }),

    listLeases: (req, ctx) => rpc(() => {
      const namespace = parseParent(req.parent, caller(ctx).namespace);
      sameNamespace(ctx, namespace);
      // Every client's leases, as upstream: `jmp lease list -A` shows who holds what;
      // getting, changing and releasing stay limited to one's own.
      const all = state.listLeases(namespace, {
        onlyActive: req.onlyActive ?? true,
        selector: req.filter || undefined,
        tags: req.tagFilter || undefined,
      });
      const page = pageOf(all, req.pageSize, req.pageToken, "ListLeases");
      return { leases: page.items.map((l) => leaseMessage(l)), nextPageToken: page.next };
    }),

    createLease: (req, ctx) => rpc(async () => {
      const me = caller(ctx);
      const namespace = parseParent(req.parent, me.namespace);
      sameNamespace(ctx, namespace);
      const l = req.lease;
      if (!l) throw new ConnectError("CreateLease needs a lease", Code.InvalidArgument);
      const presenceTimeout = presenceTimeoutOf(ctx);
      const lease = await state.createLease(namespace, me.name, {
        selector: l.selector || undefined,
        exporterName: l.exporterName ? parseResourceName(l.exporterName, "exporters", namespace).name : undefined,
        duration: l.duration ? durationMs(l.duration) : undefined,
        beginTime: l.beginTime ? timestampMs(l.beginTime) : undefined,
        endTime: l.endTime ? timestampMs(l.endTime) : undefined,
        tags: l.tags,
        context: l.context,
        allowDisabled: l.allowDisabled,
        presenceTimeout,
      }, req.leaseId || undefined);
      return leaseMessage(lease);
    }),

    updateLease: (req, ctx) => rpc(async () => {
      const me = caller(ctx);
      const l = req.lease;
      if (!l) throw new ConnectError("UpdateLease needs a lease", Code.InvalidArgument);
      const { namespace, name } = parseResourceName(l.name, "leases", me.namespace);
      sameNamespace(ctx, namespace);
      const paths = new Set((req.updateMask?.paths ?? []).map((p) => p.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)));
      if (paths.size === 0) throw new ConnectError("UpdateLease needs an update_mask naming what to change", Code.InvalidArgument);
      for (const p of paths) {
        if (!["duration", "begin_time", "end_time", "client"].includes(p)) {
          throw new ConnectError(`cannot update '${p}' (duration, begin_time, end_time or client)`, Code.InvalidArgument);
        }
      }
      const lease = await state.updateLease(namespace, name, {
        duration: paths.has("duration") && l.duration ? durationMs(l.duration) : undefined,
        beginTime: paths.has("begin_time") && l.beginTime ? timestampMs(l.beginTime) : undefined,
        endTime: paths.has("end_time") && l.endTime ? timestampMs(l.endTime) : undefined,
        client: paths.has("client") && l.client ? parseResourceName(l.client, "clients", namespace).name : undefined,
      }, me.name);
      return leaseMessage(lease);
    }),

    deleteLease: (req, ctx) => rpc(async () => {
      const me = caller(ctx);
      const { namespace, name } = parseResourceName(req.name, "leases", me.namespace);
      sameNamespace(ctx, namespace);
      await state.releaseLease(namespace, name, me.name);
      return {};
    }),

    rotateToken: (req, ctx) => rpc(async () => {
      const id = identityOf(ctx);
      const namespace = parseParent(req.parent, id.namespace);
      sameNamespace(ctx, namespace);
      const tokenId = await state.rotateToken("Client", namespace, id.name);
      const client = state.getClient(namespace, id.name);
      const issued = await authority.issue({ kind: "Client", namespace, name: id.name, uid: client.uid, tokenId });
      const { timestampFromDate } = await import("@bufbuild/protobuf/wkt");
      return { token: issued.token, expiry: timestampFromDate(new Date(issued.expiresAt)) };
    }),
  };
}
