/**
 * ConsoleLogService (jmp's own, jumpstarter.console.v1): exporters send what their
 * consoles print during a lease; the lease's client and the admin read it, during
 * the lease and after it. Kept by ConsoleLogs (console-logs.ts).
 */
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ConsoleLogService, ReadResponseSchema } from "../../gen/jumpstarter/console/v1/console_pb.ts";
import type { StopSignal } from "../../common/broadcast-signal.ts";
import { identityOf } from "../auth.ts";
import { ConsoleLogs } from "../console-logs.ts";
import type { Lease } from "../model.ts";
import { rpcError } from "./errors.ts";

/** What the service reads of the state. */
export interface ConsoleLeases {
  getLease(namespace: string, name: string, asClient?: string): Lease | Promise<Lease>;
  on(event: "lease", fn: (lease: Lease) => void): () => void;
}

/** How long a follower waits after the lease ended for its exporter's last output. */
const AFTER_END_MS = 10_000;

export function consoleService(state: ConsoleLeases, logs: ConsoleLogs, shutdown: StopSignal): ServiceImpl<typeof ConsoleLogService> {
  async function leaseFor(ctx: HandlerContext, name: string, namespace: string): Promise<Lease> {
    const id = identityOf(ctx);
    try {
      if (id.kind === "Admin") return await state.getLease(namespace || "default", name);
      if (namespace && namespace !== id.namespace) throw new ConnectError(`namespace '${namespace}' is not yours (you are in '${id.namespace}')`, Code.PermissionDenied);
      if (id.kind === "Client") return await state.getLease(id.namespace, name, id.name);
      const lease = await state.getLease(id.namespace, name);
      if (lease.exporter !== id.name) throw new ConnectError(`lease '${name}' is not held by exporter '${id.name}'`, Code.PermissionDenied);
      return lease;
    } catch (e) {
      throw rpcError(e);
    }
  }

  return {
    async append(req, ctx) {
      const lease = await leaseFor(ctx, req.lease, "");
      const bad = ConsoleLogs.checkDriver(req.driver);
      if (bad) throw new ConnectError(bad, Code.InvalidArgument);
      logs.append(lease.namespace, lease.name, req.driver, req.data, Number(req.keepBytes), Number(req.dropped));
      if (req.done) logs.done(lease.namespace, lease.name, req.driver);
      return {};
    },

    async *read(req, ctx): AsyncGenerator<MessageInitShape<typeof ReadResponseSchema>> {
      const lease = await leaseFor(ctx, req.lease, req.namespace);
      const { namespace, name } = lease;
      if (req.driver) {
        const bad = ConsoleLogs.checkDriver(req.driver);
        if (bad) throw new ConnectError(bad, Code.InvalidArgument);
      }
      const wanted = (driver: string) => !req.driver || driver === req.driver;
      // Subscribed before the kept part is read, so nothing falls between the two.
      const queue: { driver: string; data?: Uint8Array; done?: boolean }[] = [];
      let wake: (() => void) | undefined;
      let ended = lease.ended;
      let endedAt = ended ? Date.now() - AFTER_END_MS : 0;
      const poke = () => {
        wake?.();
        wake = undefined;
      };
      const unwatch = req.follow ? logs.watch(namespace, name, (e) => {
        if (!wanted(e.driver)) return;
        queue.push(e);
        poke();
      }) : () => {};
      const unsubscribe = req.follow ? state.on("lease", (l) => {
        if (l.namespace === namespace && l.name === name && l.ended && !ended) {
          ended = true;
          endedAt = Date.now();
          poke();
        }
      }) : () => {};
      const onShutdown = () => poke();
      shutdown.addEventListener("abort", onShutdown);
      try {
        const drivers = logs.drivers(namespace, name).filter(wanted);
        if (req.driver && drivers.length === 0 && (!req.follow || lease.ended)) {
          throw new ConnectError(`lease '${name}' has no captured output of driver '${req.driver}'`, Code.NotFound);
        }
        // Read whole before the first yield: what arrives from now on is in the queue, not in this.
        const kept = drivers.flatMap((driver) => [...logs.read(namespace, name, driver)]);
        queue.length = 0;
        for (const c of kept) yield { driver: c.driver, data: c.data, skipped: BigInt(c.skipped) };
        if (!req.follow) return;
        for (;;) {
          while (queue.length) {
            const e = queue.shift()!;
            if (e.data) yield { driver: e.driver, data: e.data };
          }
          if (shutdown.aborted) throw new ConnectError("the controller is shutting down", Code.Unavailable);
          if (ended && (logs.allDone(namespace, name) || Date.now() - endedAt >= AFTER_END_MS)) return;
          await new Promise<void>((resolve) => {
            // Its listener goes with each wait: a follower woken by every chunk of output
            // would otherwise leave one on its call's signal per chunk.
            const done = () => {
              clearTimeout(timer);
              ctx.signal.removeEventListener("abort", done);
              resolve();
            };
            const timer = setTimeout(done, ended ? Math.max(0, AFTER_END_MS - (Date.now() - endedAt)) : 60_000);
            wake = done;
            if (ctx.signal.aborted) done();
            else ctx.signal.addEventListener("abort", done, { once: true });
          });
          if (ctx.signal.aborted) return;
        }
      } finally {
        unwatch();
        unsubscribe();
        shutdown.removeEventListener("abort", onShutdown);
      }
    },
  };
}
