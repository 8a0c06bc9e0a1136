import { expect, test } from "bun:test";
import { parseAccessPolicyFile } from "../common/access-policy.ts";
import { accessFor, OPEN_ACCESS, refusalMessage } from "./access.ts";

const policies = parseAccessPolicyFile(`apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterAccessPolicy
metadata: { name: rpi }
spec:
  exporterSelector: { matchLabels: { board: rpi4 } }
  policies:
    - { description: admins, priority: 20, from: [ { clientSelector: { matchLabels: { role: admin } } } ] }
    - { description: ci, priority: 5, maximumDuration: 2h, spotAccess: true, from: [ { clientSelector: { matchLabels: { role: ci } } } ] }
    - { description: ci-nightly, priority: 5, from: [ { clientSelector: { matchLabels: { role: ci, nightly: "yes" } } } ] }
`, "p.yaml", "default");

test("no policy: everyone, everything, priority 0", () => {
  expect(accessFor([], { role: "x" }, { board: "any" })).toBe(OPEN_ACCESS);
});

test("a policy opens its exporters only to the clients its rules select; the best rule wins", () => {
  expect(accessFor(policies, { role: "admin" }, { board: "rpi4" })).toEqual({ priority: 20, spotAccess: false, maximumDurationMs: undefined, grantedBy: "rpi (admins)" });
  expect(accessFor(policies, { role: "ci" }, { board: "rpi4" })).toEqual({ priority: 5, spotAccess: true, maximumDurationMs: 7_200_000, grantedBy: "rpi (ci)" });
  // Same priority, the non-spot rule is the stronger claim.
  expect(accessFor(policies, { role: "ci", nightly: "yes" }, { board: "rpi4" })?.grantedBy).toBe("rpi (ci-nightly)");
  expect(accessFor(policies, { role: "dev" }, { board: "rpi4" })).toBeNull();
  // Once policies exist, an exporter none of them selects is open to nobody (as upstream).
  expect(accessFor(policies, { role: "admin" }, { board: "jetson" })).toBeNull();
});

test("the refusal says which policies cover the exporters and whom they admit", () => {
  expect(refusalMessage(policies, "dave", [{ name: "pi-1", labels: { board: "rpi4" } }])).toBe(
    "No access policy admits client dave to exporter pi-1: rpi (admins) admits role=admin; rpi (ci) admits role=ci; rpi (ci-nightly) admits role=ci,nightly=yes",
  );
  expect(refusalMessage(policies, "dave", [{ name: "j-1", labels: { board: "jetson" } }, { name: "j-2", labels: { board: "jetson" } }])).toBe(
    "No access policy covers the 2 matching exporters (e.g. j-1), so no client may lease them; policies exist in this namespace (rpi)",
  );
});
