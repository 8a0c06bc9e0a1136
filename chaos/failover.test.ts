/** The failover scenario's own checks, each shown to fail on a planted fault (run by `npm run chaos` first). */
import { expect, test } from "bun:test";
import { doubleBookedIn, type LeaseObject } from "../test/distributed/kube-lab.ts";
import { judgeStorm } from "./failover.ts";

const lease = (name: string, exporter?: string, ended = false): LeaseObject => ({
  metadata: { name },
  status: { ended, ...(exporter ? { exporterRef: { name: exporter } } : {}) },
});

test("a lease the client was told it created, missing from the cluster, is lost; a deleted one still open is reported", () => {
  const stored = [lease("a", "pi-1", true), lease("b", "pi-2", false), lease("c")];
  expect(judgeStorm(["a", "b", "c"], ["a", "c"], stored)).toEqual({ lost: [], stillOpen: ["c"] });
  expect(judgeStorm(["a", "gone"], ["a"], stored)).toEqual({ lost: ["gone"], stillOpen: [] });
  expect(judgeStorm(["a", "b"], ["a", "b"], stored).stillOpen).toEqual(["b"]);
});

test("two open leases on one exporter are double-booked; an ended one beside an open one is not", () => {
  expect(doubleBookedIn([lease("a", "pi-1"), lease("b", "pi-2"), lease("c", "pi-1", true), lease("d")])).toEqual([]);
  expect(doubleBookedIn([lease("a", "pi-1"), lease("b", "pi-1")])).toEqual(["pi-1: a and b"]);
});
