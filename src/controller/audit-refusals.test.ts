import { expect, test } from "bun:test";
import type { NewAuditEntry } from "./audit.ts";
import { RefusalAudit } from "./audit-refusals.ts";

test("a flood of refusals: the first 60 of a minute one by one, the rest counted in one entry when the minute ends", async () => {
  let now = 1_000_000;
  const written: Omit<NewAuditEntry, "at">[] = [];
  const audit = new RefusalAudit(async (e) => void written.push(...e), () => now);
  for (let i = 0; i < 100; i++) {
    audit.refused({
      reason: "expired", message: "token has expired", procedure: "jumpstarter.client.v1.ClientService/ListLeases",
      who: { kind: "Client", namespace: "lab", name: "ci" },
    });
  }
  expect(written).toHaveLength(60);
  expect(written[0]).toEqual({
    namespace: "lab", action: "token.refuse", actor: "client/ci", client: "ci", reason: "expired",
    detail: "jumpstarter.client.v1.ClientService/ListLeases: token has expired",
  });
  now += 60_000;
  audit.refused({ reason: "no-token", message: "no token was sent", procedure: "p/M" });
  audit.stop();
  expect(written).toHaveLength(62);
  expect(written[60]).toMatchObject({ namespace: "", actor: "unknown", reason: "many" });
  expect(written[60]!.detail).toStartWith("40 more calls were refused in the minute from ");
  expect(written[61]).toMatchObject({ namespace: "", actor: "unknown", reason: "no-token", detail: "p/M: no token was sent" });
});

test("the count of a minute that ends in silence is written by its timer, at the minute's end", async () => {
  let now = 5_000;
  const written: Omit<NewAuditEntry, "at">[] = [];
  const armed: { fn: () => void; ms: number }[] = [];
  const audit = new RefusalAudit(async (e) => void written.push(...e), () => now, { set: (fn, ms) => armed.push({ fn, ms }), clear: () => {} });
  for (let i = 0; i < 63; i++) audit.refused({ reason: "malformed", message: "m", procedure: "p/M" });
  expect(written).toHaveLength(60);
  expect(armed.map((t) => t.ms)).toEqual([60_000]);
  now += 60_000;
  armed[0]!.fn();
  expect(written.at(-1)).toMatchObject({ reason: "many", detail: expect.stringMatching(/^3 more calls were refused/) });
  expect(written).toHaveLength(61);
});
