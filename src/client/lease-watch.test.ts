/**
 * The watch of a lease in use, on a fake clock against the controller's own lease
 * state (SQLite, expiry timers) on that clock: the 5- and 1-minute warnings,
 * auto-extend, a refused extension, a controller that cannot be reached when an
 * extension is due. What the RPC layer adds (errors as codes, the Lease message) is
 * done here as it does it; `test/lease-life.test.ts` runs the same through `jmp`.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { Code } from "@connectrpc/connect";
import { leaseMessage } from "../controller/convert.ts";
import { ControllerError } from "../controller/errors.ts";
import { Harness, MIN, NS } from "../controller/state-harness.ts";
import { PeerError } from "./errors.ts";
import { type LeaseAccess, LeaseWatch, type LeaseLifeOptions } from "./lease-watch.ts";
import { leaseView, type LeaseView } from "./leases.ts";

let h: Harness;

beforeEach(async () => {
  h = await Harness.withAliceAndPi1();
});

afterEach(() => h.close());

/** The controller as a client sees it: its answers as LeaseViews, its refusals as PeerErrors with their codes. */
class Controller implements LeaseAccess {
  /** Unreachable (a restart): every call fails as a refused connection does. */
  down = false;
  /** A limit an access policy would set: longer durations are refused. */
  maxMs?: number;
  /** The next update is applied, then the controller goes down before it answers. */
  loseNextAnswer = false;
  readonly updates: number[] = [];
  /** Runs just before an update reaches the controller's state. */
  beforeUpdate?: () => Promise<void>;

  constructor(readonly name: string) {}

  private async call<T>(fn: () => T | Promise<T>): Promise<T> {
    if (this.down) throw new PeerError("cannot reach the controller at 127.0.0.1:1: connection refused", Code.Unavailable);
    try {
      return await fn();
    } catch (e) {
      throw e instanceof ControllerError ? new PeerError(e.message, e.code) : e;
    }
  }

  get(): Promise<LeaseView> {
    return this.call(async () => leaseView(leaseMessage(await h.state.getLease(NS, this.name, "alice"), h.clock.now())));
  }

  setDuration(ms: number): Promise<LeaseView> {
    return this.call(async () => {
      this.updates.push(ms);
      await this.beforeUpdate?.();
      if (this.maxMs !== undefined && ms > this.maxMs) {
        throw new PeerError(`lease duration ${ms / MIN}m exceeds the maximum of ${this.maxMs / MIN}m set by ExporterAccessPolicy 'lab'`, Code.FailedPrecondition);
      }
      const view = leaseView(leaseMessage(await h.state.updateLease(NS, this.name, { duration: ms }, "alice"), h.clock.now()));
      if (this.loseNextAnswer) {
        this.loseNextAnswer = false;
        this.down = true;
        throw new PeerError("cannot reach the controller at 127.0.0.1:1: the connection was cut", Code.Unavailable);
      }
      return view;
    });
  }
}

interface Seen {
  ending: { at: number; remainingMs: number }[];
  notices: { at: number; line: string }[];
  ends: { at: number; why: string }[];
}

/** A Ready lease of `durationMs` and a watch on it; what the watch says is kept with the time it said it. */
async function watched(durationMs: number, life: LeaseLifeOptions = {}) {
  await h.state.createLease(NS, "alice", { selector: "board=rpi4", duration: durationMs }, "l");
  const controller = new Controller("l");
  const seen: Seen = { ending: [], notices: [], ends: [] };
  const watch = new LeaseWatch("l", controller, await controller.get(), {
    ...life,
    clock: h.clock,
    onEnding: (remainingMs) => seen.ending.push({ at: h.clock.time, remainingMs }),
    onNotice: (line) => seen.notices.push({ at: h.clock.time, line }),
    onEnd: (why) => seen.ends.push({ at: h.clock.time, why }),
  }).start();
  return { controller, seen, watch, t0: h.clock.time };
}

/** Moves the fake clock in 1 s steps, letting the watch's calls (promises) finish after each. */
async function run(ms: number): Promise<void> {
  for (let left = ms; left > 0; left -= 1000) {
    h.clock.advance(Math.min(1000, left));
    await new Promise((resolve) => setImmediate(resolve));
  }
}

const state = () => h.summary("l");

/**
 * Reported once, as the lease ends rather than at the next 5-second look: within the
 * 1 s step of `run` (the time recorded is the step's, since the report follows a call).
 */
function expectEnd(seen: Seen, endsAt: number, why: string): void {
  expect(seen.ends.map((e) => e.why)).toEqual([why]);
  expect(seen.ends[0]!.at - endsAt).toBeGreaterThanOrEqual(0);
  expect(seen.ends[0]!.at - endsAt).toBeLessThanOrEqual(1000);
}

describe("without auto-extend", () => {
  test("a 30-minute lease is warned about 5 minutes and 1 minute before its end, once each, and its end is reported once", async () => {
    const { seen, t0 } = await watched(30 * MIN);
    await run(31 * MIN);
    expect(seen.ending).toEqual([
      { at: t0 + 25 * MIN, remainingMs: 5 * MIN },
      { at: t0 + 29 * MIN, remainingMs: MIN },
    ]);
    expectEnd(seen, t0 + 30 * MIN, "lease l ended (Expired)");
    expect(seen.notices).toEqual([]);
  });

  test("a lease shorter than 5 minutes gets only the 1-minute warning; one shorter than a minute none", async () => {
    const { seen, t0 } = await watched(3 * MIN);
    await run(4 * MIN);
    expect(seen.ending).toEqual([{ at: t0 + 2 * MIN, remainingMs: MIN }]);
    expect(seen.ends.map((e) => e.why)).toEqual(["lease l ended (Expired)"]);
    await h.state.releaseLease(NS, "l", "alice");

    await h.state.createLease(NS, "alice", { selector: "board=rpi4", duration: 8_000 }, "short");
    const c = new Controller("short");
    const said: number[] = [];
    const ends: string[] = [];
    new LeaseWatch("short", c, await c.get(), { clock: h.clock, onEnding: (ms) => said.push(ms), onEnd: (why) => ends.push(why) }).start();
    await run(10_000);
    expect({ said, ends }).toEqual({ said: [], ends: ["lease short ended (Expired)"] });
  });

  test("a lease extended by hand after its 5-minute warning is warned about again before its new end", async () => {
    const { seen, t0 } = await watched(30 * MIN);
    await run(26 * MIN);
    expect(seen.ending.map((e) => e.remainingMs)).toEqual([5 * MIN]);
    await h.state.updateLease(NS, "l", { duration: 60 * MIN }, "alice"); // jmp lease update l --extend 30m
    await run(35 * MIN);
    expect(seen.ending).toEqual([
      { at: t0 + 25 * MIN, remainingMs: 5 * MIN },
      { at: t0 + 55 * MIN, remainingMs: 5 * MIN },
      { at: t0 + 59 * MIN, remainingMs: MIN },
    ]);
    expectEnd(seen, t0 + 60 * MIN, "lease l ended (Expired)");
  });

  test("a lease released by someone else is reported as such within a look", async () => {
    const { seen, t0 } = await watched(30 * MIN);
    await run(MIN);
    await h.state.releaseLease(NS, "l", "alice");
    await run(10_000);
    expect(seen.ends).toEqual([{ at: t0 + MIN + 5_000, why: "lease l ended (Released)" }]);
  });
});

describe("auto-extend", () => {
  test("keeps a 30-minute lease for 3 hours, adding 30 minutes 10 minutes before each end, without a warning", async () => {
    const { controller, seen, watch, t0 } = await watched(30 * MIN, { autoExtend: true });
    expect({ step: watch.stepMs, lead: watch.leadMs }).toEqual({ step: 30 * MIN, lead: 10 * MIN });
    await run(3 * 60 * MIN);
    expect(state()).toBe("Ready/Ready@pi-1");
    expect(controller.updates).toEqual([60, 90, 120, 150, 180, 210].map((m) => m * MIN));
    expect(h.lease("l").duration).toBe(210 * MIN);
    expect(seen).toEqual({ ending: [], notices: [], ends: [] });
    // Once the watch stops (the session is closed), nothing extends the lease any more.
    watch.stop();
    await run(40 * MIN);
    expect(state()).toBe("Ready=False/Expired@pi-1 ended");
    expect(controller.updates).toHaveLength(6);
    expect(h.clock.time - t0).toBe(220 * MIN);
  });

  test("a short lease is extended at half its duration: 5 s, extended every 5 s from 2.5 s", async () => {
    const { controller, seen, watch } = await watched(5_000, { autoExtend: true });
    expect(watch.leadMs).toBe(2_500);
    await run(12_000);
    expect(state()).toBe("Ready/Ready@pi-1");
    expect(controller.updates).toEqual([10_000, 15_000]);
    expect(seen).toEqual({ ending: [], notices: [], ends: [] });
  });

  test("an extension the controller refuses is said once, with its reason and the end; then the warnings come and the lease ends", async () => {
    const { controller, seen, t0 } = await watched(30 * MIN, { autoExtend: true });
    controller.maxMs = 60 * MIN;
    await run(70 * MIN);
    // 60 min was granted at 20 min; 90 min was refused at 50 min, 10 minutes before the end.
    expect(controller.updates).toEqual([60 * MIN, 90 * MIN]);
    expect(seen.notices).toEqual([{
      at: t0 + 50 * MIN,
      line: expect.stringMatching(
        /^cannot extend lease l: lease duration 90m exceeds the maximum of 60m set by ExporterAccessPolicy 'lab'; it ends in 10m \(at \d\d:\d\d:\d\d\); no longer extending it$/,
      ),
    }]);
    expect(seen.ending).toEqual([
      { at: t0 + 55 * MIN, remainingMs: 5 * MIN },
      { at: t0 + 59 * MIN, remainingMs: MIN },
    ]);
    expectEnd(seen, t0 + 60 * MIN, "lease l ended (Expired)");
  });

  test("a controller that cannot be reached when an extension is due is tried again until it is back; the lease never ends", async () => {
    const { controller, seen, t0 } = await watched(30 * MIN, { autoExtend: true });
    await run(19 * MIN);
    controller.down = true;
    await run(3 * MIN);
    expect(controller.updates).toEqual([]);
    controller.down = false;
    await run(5_000);
    // Back after a restart: extended within one backoff step (at most 4 s).
    expect(controller.updates).toEqual([60 * MIN]);
    expect(h.lease("l").duration).toBe(60 * MIN);
    await run(60 * MIN);
    expect(state()).toBe("Ready/Ready@pi-1");
    expect(h.clock.time - t0).toBe(82 * MIN + 5_000);
    expect(seen).toEqual({ ending: [], notices: [], ends: [] });
  });

  test("an extension whose answer was lost in a controller restart is not made twice: the retry finds the lease extended", async () => {
    const { controller, seen, t0 } = await watched(30 * MIN, { autoExtend: true });
    controller.loseNextAnswer = true;
    await run(20 * MIN);
    // The extension was applied, then the controller went away before answering.
    expect({ updates: controller.updates, down: controller.down }).toEqual({ updates: [60 * MIN], down: true });
    await run(3_000);
    controller.down = false;
    await run(MIN);
    expect(controller.updates).toEqual([60 * MIN]);
    expect(h.lease("l").duration).toBe(60 * MIN);
    expect(h.clock.time - t0).toBe(21 * MIN + 3_000);
    expect(seen).toEqual({ ending: [], notices: [], ends: [] });
  });

  test("an extension someone made by hand is kept: the next one adds to it", async () => {
    const { controller } = await watched(30 * MIN, { autoExtend: true });
    await run(5 * MIN);
    await h.state.updateLease(NS, "l", { duration: 120 * MIN }, "alice");
    await run(115 * MIN);
    expect(controller.updates).toEqual([150 * MIN]);
  });

  test("an extension refused because the lease ended just before is reported as the end, not as a refusal", async () => {
    const { controller, seen, t0 } = await watched(30 * MIN, { autoExtend: true });
    // An admin releases the lease between the watch's look and its UpdateLease.
    controller.beforeUpdate = async () => void (await h.state.releaseLease(NS, "l", "alice"));
    await run(21 * MIN);
    expect(controller.updates).toEqual([60 * MIN]);
    expect(seen.notices).toEqual([]);
    expect(seen.ends).toEqual([{ at: t0 + 20 * MIN, why: "lease l ended (Released)" }]);
  });
});
