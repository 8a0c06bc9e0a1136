import { afterEach, beforeEach, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { createContextValues, type HandlerContext } from "@connectrpc/connect";
import { StatusRequestSchema } from "../../gen/jumpstarter/v1/jumpstarter_pb.ts";
import { IDENTITY, type RouterTokens } from "../auth.ts";
import { Harness, MIN, NS } from "../state-harness.ts";
import { controllerService } from "./controller-service.ts";
import { ListenQueues } from "./listen-queues.ts";

let h: Harness;

beforeEach(async () => {
  h = new Harness();
});

afterEach(() => h.close());

/** The Status stream of exporter `name`, driven by hand as the RPC layer would. */
function statusStream(name: string) {
  const service = controllerService({ state: h.state, routerTokens: {} as RouterTokens, queues: new ListenQueues(), routers: () => [] });
  const abort = new AbortController();
  const values = createContextValues().set(IDENTITY, {
    kind: "Exporter", namespace: NS, name, uid: "u", tokenId: "t", issuedAt: new Date(), expiresAt: new Date(),
  });
  const ctx = { values, signal: abort.signal } as unknown as HandlerContext;
  const stream = service.status!(create(StatusRequestSchema), ctx) as AsyncGenerator<{ leased: boolean; leaseName?: string }>;
  return {
    /** The next message (a stream that misses a change never sends it: the test times out). */
    next: async () => (await stream.next()).value,
    close: async () => {
      abort.abort();
      await stream.return(undefined);
    },
  };
}

test("a Status stream sees changes made while it was sending", async () => {
  await h.onlineExporter("pi", { board: "rpi4" });
  await h.state.createClient(NS, "alice");
  const status = statusStream("pi");
  try {
    expect(await status.next()).toMatchObject({ leased: false });
    // Both changes land while the stream is parked at its `yield`, with no one waiting on a wake-up.
    const lease = await h.state.createLease(NS, "alice", { selector: "board=rpi4", duration: MIN });
    expect(await status.next()).toMatchObject({ leased: true, leaseName: lease.name });
    await h.state.releaseLease(NS, lease.name);
    expect(await status.next()).toMatchObject({ leased: false });
  } finally {
    await status.close();
  }
}, 5000);
