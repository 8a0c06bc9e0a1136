import { expect, test } from "bun:test";
import { formatSelector } from "../../../common/selector.ts";
import { policyFromObject, policyToObject } from "./policy-convert.ts";

// As upstream's sample sits in a cluster, with what the API server adds.
const stored = {
  apiVersion: "jumpstarter.dev/v1alpha1",
  kind: "ExporterAccessPolicy",
  metadata: { name: "default", namespace: "lab", uid: "u-1", resourceVersion: "42", labels: { "app.kubernetes.io/managed-by": "kustomize" } },
  spec: {
    exporterSelector: { matchLabels: { dut: "fancy-hardware" } },
    policies: [
      { description: "Developers", priority: 10, maximumDuration: "24h", from: [{ clientSelector: { matchLabels: { "client-type": "developer" } } }] },
    ],
  },
};

test("an upstream object reads as its policy, and writes back with its metadata kept", () => {
  const p = policyFromObject(stored);
  expect(p.namespace).toBe("lab");
  expect(formatSelector(p.exporterSelector)).toBe("dut=fancy-hardware");
  expect(p.policies[0]).toMatchObject({ description: "Developers", priority: 10, maximumDurationMs: 24 * 3_600_000, spotAccess: false });
  const back = policyToObject(p, stored);
  expect(back.metadata).toEqual(stored.metadata);
  expect(policyFromObject(back)).toEqual(p);
});

test("an object that cannot be read admits nobody to anything (fails closed)", () => {
  const p = policyFromObject({ ...stored, spec: { policies: [{ priority: "high" }] } });
  expect(p).toEqual({ namespace: "lab", name: "default", exporterSelector: { requirements: [] }, policies: [] });
});
