import { expect, test } from "bun:test";
import { ConnectError, Code } from "@connectrpc/connect";
import { getLogger } from "../common/log.ts";
import { ConsolePush } from "./console-push.ts";

interface Sent {
  driver: string;
  data: Uint8Array;
  dropped: number;
  done: boolean;
}

/** A controller double: takes Append calls one by one, failing or holding them as told. */
function controller() {
  const sent: Sent[] = [];
  let failNext = 0;
  let gate: Promise<void> | undefined;
  const client = {
    async append(m: { driver?: string; data?: Uint8Array; dropped?: bigint; done?: boolean }) {
      await gate;
      if (failNext > 0) {
        failNext--;
        throw new ConnectError("controller restarting", Code.Unavailable);
      }
      sent.push({ driver: m.driver!, data: m.data ?? new Uint8Array(), dropped: Number(m.dropped ?? 0n), done: m.done ?? false });
      return {};
    },
  };
  return {
    client: client as never,
    sent,
    failOnce: () => void (failNext = 1),
    hold: () => {
      let release!: () => void;
      gate = new Promise((r) => (release = r));
      return () => {
        gate = undefined;
        release();
      };
    },
  };
}

const bytes = (from: number, n: number) => Uint8Array.from({ length: n }, (_, i) => (from + i) % 251);

test("output the controller could not take in time is dropped oldest first, and each message says how much was dropped just before it", async () => {
  const c = controller();
  const push = new ConsolePush(c.client, "L1", 1000, getLogger("test"));
  // 3000 bytes before the first message goes: the ring keeps the newest 500 (half what the controller keeps).
  for (let at = 0; at < 3000; at += 100) push.output("console", bytes(at, 100));
  await push.finish();
  const data = c.sent.filter((m) => !m.done);
  expect(data[0]!.dropped).toBe(2500);
  expect([...Buffer.concat(data.map((m) => m.data))]).toEqual([...bytes(2500, 500)]);
  expect(c.sent.at(-1)).toMatchObject({ done: true, dropped: 0 });
});

test("a message the controller failed to take is counted in the next one's gap", async () => {
  const c = controller();
  const push = new ConsolePush(c.client, "L1", 1 << 20, getLogger("test"));
  c.failOnce();
  const release = c.hold();
  push.output("console", bytes(0, 500));
  await Bun.sleep(10);
  // The first message (500 bytes) is in flight and fails; the next output follows it.
  release();
  push.output("console", bytes(500, 300));
  await push.finish();
  const data = c.sent.filter((m) => !m.done);
  // What arrived and what is said missing add up to what the console printed, in place.
  expect(data.reduce((n, m) => n + m.data.byteLength + m.dropped, 0)).toBe(800);
  expect(data[0]).toMatchObject({ dropped: 500 });
  expect([...data[0]!.data]).toEqual([...bytes(500, 300)]);
}, 10_000);
