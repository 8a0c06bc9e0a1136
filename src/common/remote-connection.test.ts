/**
 * connectRemote against real TLS HTTP/2 peers that misbehave: one that accepts
 * and never answers, one that goes silent mid-stream, one that cuts a call
 * before answering it.
 */
import { describe, expect, test } from "bun:test";
import * as http2 from "node:http2";
import type * as net from "node:net";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { ControllerService } from "../gen/jumpstarter/v1/jumpstarter_pb.ts";
import { silentListener, tcpRelay, throwawayCert } from "../router/test-router.ts";
import { Logger } from "./log.ts";
import { connectRemote } from "./remote-connection.ts";

/** A controller stand-in whose Status stream answers once and Listen never does; `cut()` drops every connection at once. */
async function quietController() {
  const { cert, key, trust } = throwawayCert();
  const listening = Promise.withResolvers<void>();
  const server = http2.createSecureServer({ cert, key }, connectNodeAdapter({
    routes: (r) => r.service(ControllerService, {
      async *status() {
        yield { leased: false };
        await new Promise(() => {});
      },
      async *listen() {
        listening.resolve();
        await new Promise(() => {});
      },
    }),
  }));
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (s) => sessions.add(s));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    endpoint: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    trust,
    /** Resolves when a Listen call has reached the server. */
    listening: listening.promise,
    cut: () => {
      for (const s of sessions) s.destroy();
    },
    close: () => {
      for (const s of sessions) s.destroy();
      return new Promise((r) => server.close(r));
    },
  };
}

/** The first message, or the error, of a server stream, and how long it took. */
async function settle(stream: AsyncIterable<unknown>): Promise<{ error?: ConnectError; ms: number }> {
  const t0 = performance.now();
  try {
    for await (const _ of stream) continue;
    return { ms: performance.now() - t0 };
  } catch (e) {
    return { error: ConnectError.from(e), ms: performance.now() - t0 };
  }
}

describe("connectRemote", () => {
  test("a peer that accepts TCP and never answers fails the call within the connect timeout, naming the endpoint", async () => {
    const peer = await silentListener();
    const remote = connectRemote(peer.endpoint, { insecure: true }, { connectTimeoutMs: 1000 });
    try {
      const { error, ms } = await settle(createClient(ControllerService, remote.transport).status({}));
      expect(peer.accepted()).toBe(1);
      expect({ code: Code[error!.code], message: error!.rawMessage }).toEqual({ code: "Unavailable", message: `no answer from ${peer.endpoint} within 1 s` });
      expect(ms).toBeGreaterThan(900);
      expect(ms).toBeLessThan(3000);
    } finally {
      remote.close();
      await peer.close();
    }
  });

  test("a peer that stops answering mid-stream is noticed by PING within interval + timeout, and the log names it", async () => {
    const controller = await quietController();
    const path = await tcpRelay(controller.endpoint);
    const lines: string[] = [];
    const remote = connectRemote(path.endpoint, controller.trust, {
      peer: "the controller",
      log: new Logger("exporter", (r) => lines.push(`${r.level}: ${r.message}`)),
      keepalive: { intervalMs: 300, timeoutMs: 300 },
    });
    try {
      const status = createClient(ControllerService, remote.transport).status({})[Symbol.asyncIterator]();
      await status.next();
      path.blackhole();
      const { error, ms } = await settle({ [Symbol.asyncIterator]: () => status });
      expect(error?.code).toBe(Code.Unavailable);
      expect(ms).toBeLessThan(2000);
      expect(lines).toContain(`warn: lost the connection to the controller at ${path.endpoint}: PING timed out`);
    } finally {
      remote.close();
      await path.close();
      await controller.close();
    }
  });

  test("a call still waiting for its answer when the connection is cut fails (Unavailable) instead of waiting forever", async () => {
    const controller = await quietController();
    const remote = connectRemote(controller.endpoint, controller.trust, { peer: "the controller" });
    try {
      const client = createClient(ControllerService, remote.transport);
      // Status has its answer's headers; Listen (no message yet) does not: the case Bun reports as a clean close.
      const status = client.status({})[Symbol.asyncIterator]();
      await status.next();
      const listen = settle(client.listen({ leaseName: "L" }));
      await controller.listening;
      controller.cut();
      const { error } = await listen;
      expect({ code: Code[error!.code], message: error!.rawMessage }).toEqual({
        code: "Unavailable",
        message: `the connection to the controller at ${controller.endpoint} closed before the call was answered`,
      });
    } finally {
      remote.close();
      await controller.close();
    }
  });
});
