/** The double's two parsers on their own: RFC 6902/7386 patches and label/field selectors, including what they refuse. */
import { describe, expect, test } from "bun:test";
import { jsonPatch, mergePatch } from "./patch.ts";
import { parseFieldSelector, parseLabelSelector } from "./selectors.ts";
import { ApiError } from "./status.ts";

function refusal(f: () => unknown): { code: number; message: string } {
  try {
    f();
  } catch (e) {
    if (e instanceof ApiError) return { code: e.code, message: e.message };
    throw e;
  }
  throw new Error("no refusal");
}

describe("JSON merge patch (RFC 7386)", () => {
  test("maps merge, null removes, arrays and scalars replace, the target is untouched", () => {
    const target = { a: { b: 1, c: [1, 2] }, d: "x" };
    expect(mergePatch(target, { a: { b: null, c: [3] }, e: { f: 1 } })).toEqual({ a: { c: [3] }, d: "x", e: { f: 1 } });
    expect(target).toEqual({ a: { b: 1, c: [1, 2] }, d: "x" });
  });
});

describe("JSON patch (RFC 6902)", () => {
  const doc = { metadata: { finalizers: ["a", "b"], annotations: { "jumpstarter.dev/x": "1" } }, spec: { n: 1 } };

  test("add, remove, replace, move, copy, test; '-' appends; ~1 and ~0 escape / and ~", () => {
    const out = jsonPatch(doc, [
      { op: "add", path: "/metadata/finalizers/-", value: "c" },
      { op: "remove", path: "/metadata/finalizers/0" },
      { op: "replace", path: "/spec/n", value: 2 },
      { op: "copy", from: "/spec/n", path: "/spec/m" },
      { op: "move", from: "/spec/m", path: "/spec/k" },
      { op: "remove", path: "/metadata/annotations/jumpstarter.dev~1x" },
      { op: "add", path: "/metadata/annotations/a~0b", value: "t" },
      { op: "test", path: "/spec/n", value: 2 },
    ]);
    expect(out).toEqual({ metadata: { finalizers: ["b", "c"], annotations: { "a~b": "t" } }, spec: { n: 2, k: 2 } });
    expect(doc.metadata.finalizers).toEqual(["a", "b"]);
  });

  test("a path that does not exist, an index out of range or an unknown op is refused", () => {
    expect(refusal(() => jsonPatch(doc, [{ op: "remove", path: "/spec/none" }])).code).toBe(422);
    expect(refusal(() => jsonPatch(doc, [{ op: "replace", path: "/metadata/finalizers/5", value: "x" }])).message).toContain("out of range");
    expect(refusal(() => jsonPatch(doc, [{ op: "frobnicate", path: "/spec" }])).code).toBe(400);
    expect(refusal(() => jsonPatch(doc, { op: "add" })).code).toBe(400);
  });
});

describe("label selectors", () => {
  const match = (sel: string, labels?: Record<string, string>) => parseLabelSelector(sel)(labels);

  test("each operator, and != / notin also match objects without the label", () => {
    expect(match("", undefined)).toBe(true);
    expect(match("a=1", { a: "1" })).toBe(true);
    expect(match("a==1", { a: "2" })).toBe(false);
    expect(match("a!=1", {})).toBe(true);
    expect(match("a in (1, 2)", { a: "2" })).toBe(true);
    expect(match("a notin (1,2)", {})).toBe(true);
    expect(match("a notin (1,2)", { a: "1" })).toBe(false);
    expect(match("jumpstarter.dev/board", { "jumpstarter.dev/board": "x" })).toBe(true);
    expect(match("!a", { a: "" })).toBe(false);
    expect(match("a in (1,2),b", { a: "1" })).toBe(false);
  });

  test("malformed selectors are 400 naming what could not be parsed", () => {
    expect(refusal(() => parseLabelSelector("a in 1,2")).code).toBe(400);
    expect(refusal(() => parseLabelSelector("a=b c")).message).toContain("unable to parse requirement");
    expect(refusal(() => parseLabelSelector("-bad=1")).message).toContain('invalid label key "-bad"');
  });
});

describe("field selectors", () => {
  test("metadata.name and metadata.namespace with =, ==, !=; other fields are refused", () => {
    const f = parseFieldSelector("metadata.name==a,metadata.namespace!=x");
    expect(f({ name: "a", namespace: "y" })).toBe(true);
    expect(f({ name: "a", namespace: "x" })).toBe(false);
    expect(refusal(() => parseFieldSelector("status.phase=Running")).message).toBe("field label not supported: status.phase");
  });
});
