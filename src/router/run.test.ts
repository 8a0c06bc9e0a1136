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

test("GET /metrics over HTTP/1.1 on the router's own port counts pairs, bytes and refusals", async () => {
  const { parsePrometheusText, sampleValue } = await import("../../test/prom-text.ts");
  const { cert, key, trust } = throwawayCert();
  const router = await runRouter({ listen: { host: "127.0.0.1", port: 0 }, tls: { cert, key }, verify: async (token) => ({ subject: token, lease: "default/L" }), log: new Logger("router", () => {}) });
  try {
    const client = createClient(RouterService, createGrpcTransport({ baseUrl: `https://${router.address}`, nodeOptions: { ca: trust.ca } }));
    const side = (token: string | undefined) => {
      async function* requests(): AsyncGenerator<StreamRequest> {
        yield create(StreamRequestSchema, { frameType: FrameType.DATA, payload: new Uint8Array(1000) });
      }
      return outcome((async () => {
        for await (const _ of client.stream(requests(), { headers: token ? { authorization: `Bearer ${token}` } : {} }));
      })());
    };
    expect(await Promise.all([side("s1"), side("s1")])).toEqual(["OK", "OK"]);
    expect(await side(undefined)).toStartWith("Unauthenticated");
    const res = await fetch(`https://${router.address}/metrics`, { tls: { ca: trust.ca } } as RequestInit);
    expect(res.status).toBe(200);
    const m = parsePrometheusText(await res.text());
    expect(sampleValue(m, "jmp_router_streams_paired_total")).toBe(1);
    expect(sampleValue(m, "jmp_router_streams_open")).toBe(0);
    // Each side sent one message of 1000 bytes (plus its 5-byte gRPC frame header and protobuf tags).
    expect(sampleValue(m, "jmp_router_bytes_total")).toBeGreaterThanOrEqual(2000);
    expect(sampleValue(m, "jmp_router_streams_refused_total", { reason: "no-token" })).toBe(1);
  } finally {
    await router.close();
  }
});
