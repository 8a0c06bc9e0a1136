import { describe, expect, test } from "bun:test";
import { parseAccessPolicyFile } from "./access-policy.ts";
import { formatSelector } from "./selector.ts";

// Upstream's sample, as an admin would apply it.
const SAMPLE = `apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterAccessPolicy
metadata:
  name: default
spec:
  exporterSelector:
    matchLabels:
      dut: fancy-hardware
  policies:
    - description: "Administrators"
      priority: 20
      from:
        - clientSelector:
            matchLabels:
              client-type: administrator
    - description: "CI"
      priority: 5
      maximumDuration: 12h
      spotAccess: true
      from:
        - clientSelector:
            matchExpressions:
              - { key: client-type, operator: In, values: [ci, nightly] }
`;

const problem = (text: string) => {
  try {
    parseAccessPolicyFile(text, "policy.yaml", "default");
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error("no error");
};

describe("parseAccessPolicyFile", () => {
  test("reads upstream's fields", () => {
    const [p] = parseAccessPolicyFile(SAMPLE, "policy.yaml", "lab");
    expect(p!.name).toBe("default");
    expect(p!.namespace).toBe("lab");
    expect(formatSelector(p!.exporterSelector)).toBe("dut=fancy-hardware");
    expect(p!.policies.map((r) => ({ d: r.description, p: r.priority, max: r.maximumDurationMs, spot: r.spotAccess, from: r.from.map(formatSelector) }))).toEqual([
      { d: "Administrators", p: 20, max: undefined, spot: false, from: ["client-type=administrator"] },
      { d: "CI", p: 5, max: 12 * 3_600_000, spot: true, from: ["client-type in (ci,nightly)"] },
    ]);
  });

  test("several documents, and what kubectl get -o yaml adds", () => {
    const two = `${SAMPLE}---\napiVersion: jumpstarter.dev/v1alpha1\nkind: ExporterAccessPolicy\nmetadata: { name: other, namespace: lab2, uid: x, resourceVersion: "7" }\nspec: {}\nstatus: {}\n`;
    expect(parseAccessPolicyFile(two, "p.yaml", "default").map((p) => `${p.namespace}/${p.name}`)).toEqual(["default/default", "lab2/other"]);
  });

  test("each mistake names the file and the field, and what was expected", () => {
    expect(problem(SAMPLE.replace("priority: 20", "priorty: 20"))).toBe(
      "policy.yaml: spec.policies[0].priorty: unknown key (did you mean 'priority'? known keys: description, priority, maximumDuration, spotAccess, from)",
    );
    expect(problem(SAMPLE.replace("priority: 20", "priority: -1"))).toBe("policy.yaml: spec.policies[0].priority: expected an integer from 0 to 2147483647, got number -1");
    expect(problem(SAMPLE.replace("maximumDuration: 12h", "maximumDuration: -3h"))).toContain("spec.policies[1].maximumDuration: expected a positive duration");
    expect(problem(SAMPLE.replace("operator: In", "operator: Like"))).toContain("spec.policies[1].from[0].clientSelector: matchExpressions: operator 'Like' on 'client-type' must be In, NotIn, Exists or DoesNotExist");
    expect(problem(SAMPLE.replace("dut: fancy-hardware", "'bad key!': x"))).toContain("spec.exporterSelector: matchLabels: key name 'bad key!'");
    expect(problem(SAMPLE.replace("kind: ExporterAccessPolicy", "kind: Exporter"))).toBe('policy.yaml: kind: expected ExporterAccessPolicy, got "Exporter"');
    expect(problem(SAMPLE.replace("name: default", "name: Default_1"))).toContain("metadata.name: expected a name of lower-case letters");
    expect(problem("spec: [")).toMatch(/^policy.yaml: line 1, column \d+: invalid YAML/);
    expect(problem("")).toBe("policy.yaml: holds no ExporterAccessPolicy");
    expect(problem(`${SAMPLE}---\n${SAMPLE}`)).toBe("policy.yaml: policy default/default appears twice");
  });
});
