/**
 * LeaseHold.release's answers to what a controller can say: released, released
 * already, gone, and a refusal for another reason, which must be a warning naming
 * the lease (the lease is still held) rather than silence.
 */
import { afterEach, expect, test } from "bun:test";
import { Code } from "@connectrpc/connect";
import { PeerError } from "./errors.ts";
import { LeaseHold } from "./lease-hold.ts";
import type { LeaseApi } from "./leases.ts";

const realWrite = process.stderr.write.bind(process.stderr);
let said: string[] = [];
afterEach(() => {
  process.stderr.write = realWrite;
  said = [];
});

/** A hold this process created, whose controller answers a release with `answer`. */
function hold(answer: () => Promise<"released" | "already">): LeaseHold {
  process.stderr.write = ((chunk: string | Uint8Array) => said.push(String(chunk)) > 0) as typeof process.stderr.write;
  const api = { release: answer } as unknown as LeaseApi;
  const Hold = LeaseHold as unknown as new (api: LeaseApi, view: unknown, created: boolean) => LeaseHold;
  return new Hold(api, { name: "l" }, true);
}

test("released by this call: true; released before or gone: false, and nothing to warn about", async () => {
  expect(await hold(async () => "released").release()).toBe(true);
  expect(await hold(async () => "already").release()).toBe(false);
  expect(await hold(async () => { throw new PeerError("lease 'l' not found", Code.NotFound); }).release()).toBe(false);
  expect(said).toEqual([]);
});

test("a release refused for another reason warns, naming the lease and how to give it back", async () => {
  const refused = hold(async () => { throw new PeerError("lease 'l' is being transferred", Code.FailedPrecondition); });
  expect(await refused.release({ retryMs: 0 })).toBe(false);
  expect(said.join("")).toContain("could not release lease l: lease 'l' is being transferred; it ends at its expiry or with 'jmp lease delete l'");
});
