import { describe, expect, test } from "bun:test";
import { createLinkedAbortController } from "@connectrpc/connect/protocol";
import { BroadcastSignal } from "./broadcast-signal.ts";

describe("BroadcastSignal", () => {
  test("listeners hear the abort once, with the signal as `this` and its reason readable; removed ones do not", () => {
    const s = new BroadcastSignal();
    const heard: unknown[] = [];
    const kept = function (this: BroadcastSignal) {
      heard.push(["kept", this.reason]);
    };
    const gone = () => heard.push("gone");
    const object = { handleEvent: (e: Event) => heard.push(["object", e.type]) };
    s.addEventListener("abort", kept);
    s.addEventListener("abort", kept);
    s.addEventListener("abort", gone);
    s.addEventListener("abort", object);
    s.removeEventListener("abort", gone);
    expect(s.listenerCount).toBe(2);
    expect(s.aborted).toBe(false);
    s.abort("why");
    s.abort("again");
    expect(heard).toEqual([["kept", "why"], ["object", "abort"]]);
    expect([s.aborted, s.reason, s.listenerCount]).toEqual([true, "why", 0]);
    s.addEventListener("abort", gone);
    expect(s.listenerCount).toBe(0);
  });

  test("a listener that throws does not keep the others from hearing; abort() then throws its error", () => {
    const s = new BroadcastSignal();
    const heard: string[] = [];
    s.addEventListener("abort", () => {
      throw new Error("first");
    });
    s.addEventListener("abort", () => heard.push("second"));
    expect(() => s.abort()).toThrow("first");
    expect(heard).toEqual(["second"]);
  });

  test("as Connect's shutdownSignal: a linked controller aborts with its reason and leaves no listener behind", () => {
    const s = new BroadcastSignal();
    const calls = Array.from({ length: 3 }, () => createLinkedAbortController(s as unknown as AbortSignal));
    expect(s.listenerCount).toBe(3);
    calls[0]!.abort(new Error("call ended"));
    expect(s.listenerCount).toBe(2);
    s.abort(new Error("draining"));
    expect(calls.map((c) => [c.signal.aborted, (c.signal.reason as Error).message])).toEqual([
      [true, "call ended"], [true, "draining"], [true, "draining"],
    ]);
    expect(s.listenerCount).toBe(0);
  });
});
