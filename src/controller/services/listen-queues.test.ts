import { expect, test } from "bun:test";
import { ListenQueues, type RouterAssignment } from "./listen-queues.ts";

/** The next assignment a Listen stream yields, or "nothing" if none comes within `ms`. */
async function next(stream: AsyncIterator<RouterAssignment>, ms = 100): Promise<string> {
  const timeout = new Promise<string>((r) => setTimeout(() => r("nothing"), ms));
  return Promise.race([stream.next().then((r) => (r.done ? "ended" : r.value.routerToken)), timeout]);
}

test("a Dial goes to the lease's newest Listen stream: an older one may be on a connection that is dead without anyone knowing yet (npm run chaos: after a pulled cable, Dials went to the exporter's old stream and the client waited 30 s)", async () => {
  const queues = new ListenQueues();
  const stale = new AbortController();
  const old = queues.listen("default/l", stale.signal)[Symbol.asyncIterator]();
  const fresh = queues.listen("default/l", new AbortController().signal)[Symbol.asyncIterator]();
  const pending = [next(old), next(fresh)];
  expect(await queues.dispatch("default/l", { routerEndpoint: "r:1", routerToken: "t1" }, 0)).toBe(true);
  expect(await Promise.all(pending)).toEqual(["nothing", "t1"]);
  // Once the newest is gone, the one left takes them again.
  stale.abort();
  expect(await next(old)).toBe("ended");
  expect(queues.hasListener("default/l")).toBe(true);
});

test("a Dial with no listener waits for one, and gives up after its time", async () => {
  const queues = new ListenQueues();
  const t0 = performance.now();
  expect(await queues.dispatch("default/l", { routerEndpoint: "r:1", routerToken: "t1" }, 50)).toBe(false);
  expect(performance.now() - t0).toBeGreaterThanOrEqual(45);
  const later = queues.dispatch("default/l", { routerEndpoint: "r:1", routerToken: "t2" }, 5_000);
  const stream = queues.listen("default/l", new AbortController().signal)[Symbol.asyncIterator]();
  expect(await later).toBe(true);
  expect(await next(stream)).toBe("t2");
});
