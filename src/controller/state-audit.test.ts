/**
 * What the controller's state writes to the audit log for the ends a lease can have
 * and the changes clients make: who (the client, an admin, the controller itself),
 * why (the end reason) and what (the message the client sees). On the fake clock.
 */
import { afterEach, beforeEach, expect, test } from "bun:test";
import { parseAccessPolicy } from "../common/access-policy.ts";
import type { AuditEntry } from "./audit.ts";
import { Harness, MIN, NS } from "./state-harness.ts";

let h: Harness;

beforeEach(async () => {
  h = new Harness();
  await h.state.createClient(NS, "alice", { role: "dev" });
  await h.state.createClient(NS, "ci", { role: "ci" });
  await h.onlineExporter("pi-1", { board: "rpi4" });
});

afterEach(() => h.close());

const of = async (lease: string): Promise<Pick<AuditEntry, "action" | "actor" | "reason" | "detail">[]> =>
  (await h.state.listAudit({ namespace: NS, lease })).map(({ action, actor, reason, detail }) => ({ action, actor, reason, detail }));

test("an expiry is the controller's, with its reason, at the time the lease ended", async () => {
  await h.state.createLease(NS, "alice", { selector: "board=rpi4", duration: 5 * MIN }, "short");
  h.clock.advance(6 * MIN);
  expect(await of("short")).toEqual([
    { action: "lease.create", actor: "client/alice", reason: "", detail: "selector 'board=rpi4' for 5m" },
    { action: "lease.acquire", actor: "controller", reason: "", detail: "" },
    { action: "lease.expire", actor: "controller", reason: "Expired", detail: "The lease has expired" },
  ]);
  const [expired] = (await h.state.listAudit({ namespace: NS, lease: "short" })).slice(-1);
  expect(expired!.at).toBe(h.lease("short").effectiveEndTime!);
});

test("spot preemption is a revocation by the controller, naming who needed the exporter", async () => {
  await h.state.applyPolicies(NS, [parseAccessPolicy({
    apiVersion: "jumpstarter.dev/v1alpha1", kind: "ExporterAccessPolicy", metadata: { name: "rpi" },
    spec: {
      exporterSelector: { matchLabels: { board: "rpi4" } },
      policies: [
        { priority: 10, from: [{ clientSelector: { matchLabels: { role: "dev" } } }] },
        { priority: 5, spotAccess: true, from: [{ clientSelector: { matchLabels: { role: "ci" } } }] },
      ],
    },
  }, NS)], "admin/root");
  await h.state.createLease(NS, "ci", { selector: "board=rpi4", duration: 30 * MIN }, "spot");
  await h.state.createLease(NS, "alice", { selector: "board=rpi4", duration: 30 * MIN }, "mine");
  const spot = await of("spot");
  expect(spot[1]).toMatchObject({ action: "lease.acquire", detail: "granted by rpi; spot access" });
  expect(spot[2]).toMatchObject({ action: "lease.revoke", actor: "controller", reason: "Preempted" });
  expect(spot[2]!.detail).toContain("non-spot access (client alice)");
  expect((await h.state.listAudit({ namespace: NS })).find((e) => e.action === "policy.apply")).toMatchObject({ actor: "admin/root", detail: "rpi (2 rules)" });
});

test("a client that shows no sign of life: its lease is given back by the controller, as ClientGone", async () => {
  await h.state.createLease(NS, "alice", { selector: "board=rpi4", duration: 30 * MIN, presenceTimeout: 30_000 }, "shell");
  h.clock.advance(40_000);
  expect((await of("shell")).at(-1)).toMatchObject({ action: "lease.revoke", actor: "controller", reason: "ClientGone" });
});

test("a transfer and a shortening are updates, by the client that made them; a request no exporter can serve is refused", async () => {
  await h.state.createLease(NS, "alice", { selector: "board=rpi4", duration: 30 * MIN }, "held");
  await h.state.updateLease(NS, "held", { duration: 10 * MIN }, "alice");
  await h.state.updateLease(NS, "held", { client: "ci" }, "alice");
  const held = await of("held");
  expect(held[2]).toMatchObject({ action: "lease.update", actor: "client/alice" });
  expect(held[2]!.detail).toMatch(/\(was .*, -20m\)$/);
  expect(held[3]).toEqual({ action: "lease.update", actor: "client/alice", reason: "Transferred", detail: "transferred from alice to ci" });
  await h.state.releaseLease(NS, "held", "ci");
  expect((await of("held")).at(-1)).toMatchObject({ action: "lease.release", actor: "client/ci", reason: "Released" });

  await h.state.createLease(NS, "alice", { selector: "board=nope", duration: 30 * MIN }, "never");
  expect((await of("never")).at(-1)).toEqual({
    action: "lease.refuse", actor: "controller", reason: "NoAccess", detail: "No exporter matches the selector board=nope",
  });
});

test("a client deleted by an admin: its leases are released by that admin, and the deletion is recorded", async () => {
  await h.state.createLease(NS, "ci", { selector: "board=rpi4", duration: 30 * MIN }, "orphan");
  await h.state.deleteClient(NS, "ci", "admin/ops");
  expect((await of("orphan")).at(-1)).toMatchObject({
    action: "lease.release", actor: "admin/ops", reason: "Released", detail: "The lease was released because its client was deleted",
  });
  const deleted = (await h.state.listAudit({ namespace: NS, client: "ci" })).find((e) => e.action === "client.delete");
  expect(deleted).toMatchObject({ actor: "admin/ops", client: "ci" });
});
