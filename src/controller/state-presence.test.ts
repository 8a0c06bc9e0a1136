/**
 * Leases whose client must stay present (issue 11, defects 2 and 3): a client that
 * asked for a presence timeout and then shows no sign of life for that long gets its
 * lease given back; and Ready leases that nobody dials say so. All on the fake clock.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { Code } from "@connectrpc/connect";
import type { LeaseRequest } from "./model.ts";
import { Harness, MIN, NS } from "./state-harness.ts";

const S = 1000;
let h: Harness;

beforeEach(async () => {
  h = new Harness();
  await h.state.createClient(NS, "alice");
  await h.state.createClient(NS, "bob");
  await h.onlineExporter("pi-1", { board: "rpi4" });
});

afterEach(() => h.close());

const create = (name: string, spec: LeaseRequest = {}, client = "alice") =>
  h.state.createLease(NS, client, { selector: "board=rpi4", duration: 30 * MIN, ...spec }, name);

const readyMessage = (name: string) => h.lease(name).conditions.find((c) => c.type === "Ready")?.message;

describe("presence timeout", () => {
  test("a Ready lease nobody has dialled, whose client shows no sign for its timeout, is given back, and the next waiting lease gets the exporter", async () => {
    await create("shell", { presenceTimeout: 30 * S });
    await create("waiting", {}, "bob");
    h.expectSummaries({ shell: "Ready/Ready@pi-1", waiting: "Pending/NotAvailable" });
    h.clock.advance(25 * S);
    h.expectSummaries({ shell: "Ready/Ready@pi-1" });
    h.clock.advance(10 * S);
    h.expectSummaries({ shell: "Ready=False/ClientGone@pi-1 ended", waiting: "Ready/Ready@pi-1" });
    expect(readyMessage("shell")).toBe("no sign of client alice for 30 s: the lease was given back");
    expect(h.lease("shell")).toMatchObject({ released: true, effectiveEndTime: h.clock.time - 5 * S });
  });

  test("calls by the owner that name the lease keep it; the same calls by others, or listings, do not", async () => {
    await create("shell", { presenceTimeout: 10 * S });
    for (let i = 0; i < 6; i++) {
      h.clock.advance(8 * S);
      h.state.getLease(NS, "shell", "alice");
    }
    await h.state.updateLease(NS, "shell", { duration: 40 * MIN }, "alice");
    h.clock.advance(8 * S);
    h.expectSummaries({ shell: "Ready/Ready@pi-1" });
    expect(() => h.state.getLease(NS, "shell", "bob")).toThrow(expect.objectContaining({ code: Code.NotFound }));
    h.state.getLease(NS, "shell");
    h.state.listLeases(NS, { client: "alice" });
    h.clock.advance(5 * S);
    h.expectSummaries({ shell: "Ready=False/ClientGone@pi-1 ended" });
  });

  test("a queued lease whose client is gone is given back before it ever takes the board", async () => {
    await create("holder");
    await create("queued", { presenceTimeout: 5 * S }, "bob");
    await create("after", {}, "bob");
    h.clock.advance(10 * S);
    h.expectSummaries({ queued: "Ready=False/ClientGone ended" });
    await h.state.releaseLease(NS, "holder");
    h.expectSummaries({ after: "Ready/Ready@pi-1" });
  });

  test("a lease in use (a client dialled it) is kept whatever its client's silence, until it ends", async () => {
    await create("shell", { presenceTimeout: 10 * S, duration: 10 * MIN });
    h.clock.advance(2 * S);
    await h.state.dialed(NS, "shell");
    h.clock.advance(5 * MIN);
    h.expectSummaries({ shell: "Ready/Ready@pi-1" });
    h.clock.advance(5 * MIN);
    h.expectSummaries({ shell: "Ready=False/Expired@pi-1 ended" });
  });

  test("a Ready lease dialled before a restart is kept through it: the store says it is in use", async () => {
    await create("shell", { presenceTimeout: 10 * S });
    await h.state.dialed(NS, "shell");
    h.crash();
    h.open();
    await h.state.statusStreamOpened(NS, "pi-1");
    h.clock.advance(5 * MIN);
    h.expectSummaries({ shell: "Ready/Ready@pi-1" });
  });

  test("a Ready lease nobody dialled before a restart is given back when its client stays silent after it (npm run chaos: a killed shell's lease held its board until it expired)", async () => {
    await create("shell", { presenceTimeout: 10 * S });
    await create("next", {}, "bob");
    h.clock.advance(5 * S);
    h.crash();
    h.open();
    await h.state.statusStreamOpened(NS, "pi-1");
    h.clock.advance(8 * S);
    h.expectSummaries({ shell: "Ready/Ready@pi-1", next: "Pending/NotAvailable" });
    h.clock.advance(5 * S);
    h.expectSummaries({ shell: "Ready=False/ClientGone@pi-1 ended", next: "Ready/Ready@pi-1" });
  });

  test("the first Dial is stored once; later ones write nothing", async () => {
    await create("shell", { presenceTimeout: 10 * S });
    h.clock.advance(2 * S);
    await h.state.dialed(NS, "shell");
    const at = h.lease("shell").dialedAt;
    expect(at).toBe(h.clock.time);
    let writes = 0;
    const off = h.state.on("lease", () => writes++);
    h.clock.advance(S);
    await h.state.dialed(NS, "shell");
    h.crash();
    h.open();
    await h.state.dialed(NS, "shell");
    off();
    expect({ writes, at: h.lease("shell").dialedAt }).toEqual({ writes: 0, at });
  });

  test("a lease without a presence timeout is never given back for silence", async () => {
    await create("plain", { duration: 10 * MIN });
    h.clock.advance(10 * MIN - S);
    h.expectSummaries({ plain: "Ready/Ready@pi-1" });
  });

  test("after a restart the clocks start at the start: a client that comes back within its timeout keeps its lease", async () => {
    await create("kept", { presenceTimeout: 20 * S });
    await create("lost", { presenceTimeout: 20 * S }, "bob");
    h.clock.advance(15 * S);
    h.crash();
    h.clock.advance(60 * S);
    h.open();
    await h.state.statusStreamOpened(NS, "pi-1");
    h.clock.advance(15 * S);
    h.state.getLease(NS, "kept", "alice");
    h.expectSummaries({ kept: "Ready/Ready@pi-1", lost: "Pending/NotAvailable" });
    h.clock.advance(10 * S);
    h.expectSummaries({ kept: "Ready/Ready@pi-1", lost: "Ready=False/ClientGone ended" });
    expect(h.lease("kept").presenceTimeout).toBe(20 * S);
  });

  test("a transfer starts the new owner's clock; the old owner's calls no longer count", async () => {
    await create("shell", { presenceTimeout: 10 * S });
    h.clock.advance(8 * S);
    await h.state.updateLease(NS, "shell", { client: "bob" }, "alice");
    h.clock.advance(8 * S);
    h.expectSummaries({ shell: "Ready/Ready@pi-1" });
    expect(() => h.state.getLease(NS, "shell", "alice")).toThrow(expect.objectContaining({ code: Code.NotFound }));
    h.clock.advance(5 * S);
    h.expectSummaries({ shell: "Ready=False/ClientGone@pi-1 ended" });
    expect(readyMessage("shell")).toBe("no sign of client bob for 10 s: the lease was given back");
  });

  test.each([4 * S, 3601 * S, 7.5 * S])("a timeout of %p ms is InvalidArgument", async (ms) => {
    await expect(create("bad", { presenceTimeout: ms })).rejects.toThrow(expect.objectContaining({
      code: Code.InvalidArgument,
      message: expect.stringContaining("a presence timeout must be a whole number of seconds from 5 to 3600"),
    }));
  });
});

describe("a Ready lease nobody dials", () => {
  test("says so after a minute, and stops saying so once a client dials", async () => {
    await create("l");
    h.clock.advance(55 * S);
    expect(readyMessage("l")).toBe("An exporter has been acquired for the client");
    h.clock.advance(10 * S);
    expect(readyMessage("l")).toBe("ready on pi-1; no client has connected yet");
    expect(h.summary("l")).toBe("Ready/Ready@pi-1");
    await h.state.dialed(NS, "l");
    expect(readyMessage("l")).toBe("An exporter has been acquired for the client");
    h.clock.advance(5 * MIN);
    expect(readyMessage("l")).toBe("An exporter has been acquired for the client");
  });

  test("a lease dialled in time never says so", async () => {
    await create("l");
    h.clock.advance(20 * S);
    await h.state.dialed(NS, "l");
    h.clock.advance(5 * MIN);
    expect(readyMessage("l")).toBe("An exporter has been acquired for the client");
  });

  test("after a restart, a lease that was Ready before it is not accused: this process cannot know who dialled", async () => {
    await create("l");
    h.crash();
    h.open();
    h.clock.advance(5 * MIN);
    expect(readyMessage("l")).toBe("An exporter has been acquired for the client");
  });
});
