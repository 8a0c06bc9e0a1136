/**
 * The standalone router on TLS as `jmp router run` serves it: stopped with
 * ROUTER_SHUTDOWN (its SIGTERM), both sides of an open stream read why.
 */
import { expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { outcome } from "../common/call-outcome.ts";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Logger } from "../common/log.ts";
import { FrameType, RouterService, type StreamRequest, StreamRequestSchema } from "../gen/jumpstarter/v1/router_pb.ts";
import { ROUTER_SHUTDOWN, runRouter } from "./run.ts";
import { throwawayCert } from "./test-router.ts";

test("a stop ends both sides of an open stream with UNAVAILABLE 'the router is shutting down' and returns at once", async () => {
  const { cert, key, trust } = throwawayCert();
  const router = await runRouter({ listen: { host: "127.0.0.1", port: 0 }, tls: { cert, key }, verify: async (token) => ({ subject: token, lease: "L" }), log: new Logger("router", () => {}) });
  const client = createClient(RouterService, createGrpcTransport({ baseUrl: `https://${router.address}`, nodeOptions: { ca: trust.ca } }));
  const side = () => {
    async function* requests(): AsyncGenerator<StreamRequest> {
      yield create(StreamRequestSchema, { frameType: FrameType.DATA, payload: new Uint8Array([1]) });
      await new Promise(() => {});
    }
    const it = client.stream(requests(), { headers: { authorization: "Bearer s1" } })[Symbol.asyncIterator]();
    return {
      first: it.next(),
      end: outcome((async () => {
        while (!(await it.next()).done);
      })()),
    };
  };
  const a = side();
  const b = side();
  await Promise.all([a.first, b.first]);
  expect(router.openCalls).toBe(2);
  const t0 = performance.now();
  await router.close(ROUTER_SHUTDOWN);
  const ms = performance.now() - t0;
  expect(await Promise.all([a.end, b.end])).toEqual(["Unavailable: the router is shutting down", "Unavailable: the router is shutting down"]);
  console.log(`router stop with a paired stream: ${Math.round(ms)} ms`);
  expect(ms).toBeLessThan(ROUTER_SHUTDOWN.graceMs);
});
