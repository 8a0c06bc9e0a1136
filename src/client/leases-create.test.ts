/**
 * LeaseApi.createRetrying against a controller whose answers go missing: the
 * retry names the same lease, so a lost answer costs a lookup, not a second lease
 * nobody knows. The controller here is the real lease state (SQLite) behind the
 * calls the connection makes; `test/faults/restarts.test.ts` runs a real restart
 * through `jmp lease create`.
 */
import { afterEach, beforeEach, expect, test } from "bun:test";
import { Code } from "@connectrpc/connect";
import { leaseMessage } from "../controller/convert.ts";
import { ControllerError } from "../controller/errors.ts";
import { Harness, MIN, NS } from "../controller/state-harness.ts";
import type { ControllerConnection } from "./controller.ts";
import { PeerError } from "./errors.ts";
import { LeaseApi } from "./leases.ts";

let h: Harness;

beforeEach(async () => {
  h = await Harness.withAliceAndPi1();
});

afterEach(() => h.close());

/** The calls LeaseApi makes, on the state; `lose` answers of CreateLease are lost after it ran, `refuse` refused before. */
function connection(opts: { lose?: number; refuse?: number }) {
  const ids: string[] = [];
  const peer = (e: unknown) => (e instanceof ControllerError ? new PeerError(e.message, e.code) : e);
  const clients = {
    async createLease(req: { leaseId: string; lease: { selector: string } }) {
      ids.push(req.leaseId);
      if (opts.refuse && opts.refuse-- > 0) throw new PeerError("the controller refused the connection", Code.Unavailable);
      try {
        const lease = await h.state.createLease(NS, "alice", { selector: req.lease.selector, duration: 30 * MIN }, req.leaseId || undefined);
        if (opts.lose && opts.lose-- > 0) throw new PeerError("the connection was reset", Code.Unavailable);
        return leaseMessage(lease);
      } catch (e) {
        throw peer(e);
      }
    },
    async getLease(req: { name: string }) {
      try {
        return leaseMessage(h.state.getLease(NS, req.name.split("/").at(-1)!, "alice"));
      } catch (e) {
        throw peer(e);
      }
    },
  };
  const c = { address: { namespace: NS }, clients } as unknown as ControllerConnection;
  return { api: new LeaseApi(c), ids };
}

test("an answer lost after the lease was made: the retry finds that lease, and no second one is made", async () => {
  const { api, ids } = connection({ lose: 1 });
  const waits: string[] = [];
  const view = await api.createRetrying({ selector: "board=rpi4", durationMs: 30 * MIN }, { onWait: (w) => waits.push(w) });
  expect(ids).toHaveLength(2);
  expect(ids[1]).toBe(ids[0]!);
  expect(view.name).toBe(ids[0]!);
  expect(h.store.listLeases(NS).map((l) => l.name)).toEqual([ids[0]!]);
  expect(waits).toEqual(["creating the lease: the connection was reset; still trying"]);
});

test("refused twice, then made: one lease; a name given by the caller is kept", async () => {
  const { api, ids } = connection({ refuse: 2 });
  const view = await api.createRetrying({ selector: "board=rpi4", durationMs: 30 * MIN, leaseId: "01a24000-0000-7000-8000-000000000001" });
  expect(ids).toEqual(Array(3).fill("01a24000-0000-7000-8000-000000000001"));
  expect(view.name).toBe("01a24000-0000-7000-8000-000000000001");
  expect(h.store.listLeases(NS)).toHaveLength(1);
});

test("a name already taken on the first try is the caller's error, not a lease to adopt", async () => {
  await h.state.createLease(NS, "alice", { selector: "board=rpi4", duration: 30 * MIN }, "01a24000-0000-7000-8000-000000000002");
  const { api } = connection({});
  await expect(api.createRetrying({ selector: "board=rpi4", durationMs: 30 * MIN, leaseId: "01a24000-0000-7000-8000-000000000002" }))
    .rejects.toThrow(expect.objectContaining({ code: Code.AlreadyExists }));
});

test("a controller that keeps refusing is given up on after retryMs, with its error", async () => {
  const { api, ids } = connection({ refuse: 1_000 });
  await expect(api.createRetrying({ selector: "board=rpi4", durationMs: 30 * MIN }, { retryMs: 600 })).rejects.toThrow("the controller refused the connection");
  expect(ids.length).toBeGreaterThan(1);
  expect(new Set(ids).size).toBe(1);
  expect(h.store.listLeases(NS)).toEqual([]);
});
