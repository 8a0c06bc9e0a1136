import { describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { LabelSelectorRequirementSchema, LabelSelectorSchema } from "../gen/jumpstarter/v1/kubernetes_pb.ts";
import {
  equalityLabels,
  formatSelector,
  fromLabelSelector,
  matches,
  parseSelector,
  SelectorError,
  toLabelSelector,
} from "./selector.ts";

const rpi4 = { board: "rpi4", rev: "2", "jumpstarter.dev/name": "pi-1" };
const qemu = { board: "qemu", arch: "arm64" };
const bare = {};

describe("parseSelector + matches", () => {
  test.each([
    ["board=rpi4", [true, false, false]],
    ["board==rpi4", [true, false, false]],
    ["board!=rpi4", [false, true, true]],
    ["board in (rpi4,qemu)", [true, true, false]],
    ["board notin (rpi4)", [false, true, true]],
    ["board", [true, true, false]],
    ["!board", [false, false, true]],
    ["board=rpi4,rev=2", [true, false, false]],
    ["board=rpi4,rev=3", [false, false, false]],
    ["board,!arch", [true, false, false]],
    ["jumpstarter.dev/name=pi-1", [true, false, false]],
    ["", [true, true, true]],
    ["  ", [true, true, true]],
  ] as const)("%p", (text, expected) => {
    const sel = parseSelector(text);
    expect([rpi4, qemu, bare].map((labels) => matches(sel, labels))).toEqual([...expected]);
  });

  test("tolerates whitespace around every token", () => {
    const sel = parseSelector("  board = rpi4 ,  arch notin ( x86 , amd64 )  , ! gone , rev  ");
    expect(formatSelector(sel)).toBe("board=rpi4,arch notin (x86,amd64),!gone,rev");
    expect(matches(sel, rpi4)).toBe(true);
  });

  test("accepts an empty value, as Kubernetes does", () => {
    const sel = parseSelector("note=");
    expect(matches(sel, { note: "" })).toBe(true);
    expect(matches(sel, { note: "x" })).toBe(false);
  });

  test("a key named like an operator word is still a key", () => {
    expect(matches(parseSelector("in=1,notin"), { in: "1", notin: "" })).toBe(true);
  });
});

describe("parse errors name the selector, the problem and the 1-based column", () => {
  test.each([
    ["board=rpi4,,x", "'board=rpi4,,x' is not a label selector: empty requirement at 12"],
    ["board=rpi4,", "empty requirement at 12"],
    [",a", "empty requirement at 1"],
    ["a b", "expected '=', '==', '!=', 'in', 'notin' or ',' after key 'a' at 3"],
    ["a=b c", "expected ',' or the end, found 'c' at 5"],
    ["a in ()", "'in' needs at least one value at 7"],
    ["a in (x", "missing ')' at 8"],
    ["a in x", "expected '(' after 'in' at 6"],
    ["a notin (x y)", "expected ',' or ')', found 'y' at 12"],
    ["=x", "expected a label key, found '=' at 1"],
    ["a=b!", "expected ',' or the end, found '!' at 4"],
    ["-bad=1", "key name '-bad' must start and end with a letter or digit"],
    ["Bad.Prefix/x=1", "key prefix 'Bad.Prefix' must be a DNS subdomain"],
    ["/x=1", "key '/x' has an empty prefix"],
    ["p/=1", "key 'p/' has an empty name"],
    [`${"k".repeat(64)}=1`, "is longer than 63 characters at 1"],
    [`k=${"v".repeat(64)}`, "is longer than 63 characters at 3"],
    ["k=a$b", "value 'a$b' must start and end with a letter or digit"],
  ])("%p", (text, message) => {
    expect(() => parseSelector(text)).toThrow(message);
  });

  test("errors are SelectorErrors (user errors, printed without a stack)", () => {
    expect(() => parseSelector("a,,b")).toThrow(SelectorError);
  });

  test("a 253-character prefix is fine, 254 is not", () => {
    const label = "a".repeat(63);
    const prefix253 = [label, label, label, "a".repeat(61)].join(".");
    expect(prefix253.length).toBe(253);
    expect(() => parseSelector(`${prefix253}/k=v`)).not.toThrow();
    expect(() => parseSelector(`${prefix253}a/k=v`)).toThrow("longer than 253 characters");
  });
});

test("formatSelector round-trips and removes duplicate set values", () => {
  for (const text of ["a=1", "a!=1", "a in (x,y)", "a notin (x)", "a", "!a", "a=1,b in (c,d),!e"]) {
    expect(formatSelector(parseSelector(text))).toBe(text);
  }
  expect(formatSelector(parseSelector("a==1,b in (x,x,y)"))).toBe("a=1,b in (x,y)");
});

test("equalityLabels takes only the k=v requirements", () => {
  expect(equalityLabels(parseSelector("board=rpi4,rev!=1,arch in (x),site==lab1,!gone"))).toEqual({
    board: "rpi4",
    site: "lab1",
  });
});

describe("proto LabelSelector", () => {
  test("k=v become matchLabels, != on one key merge into one NotIn", () => {
    const msg = toLabelSelector(parseSelector("board=rpi4,rev!=1,rev!=2,arch in (a,b),x,!y"));
    expect(msg.matchLabels).toEqual({ board: "rpi4" });
    expect(msg.matchExpressions.map((e) => [e.key, e.operator, e.values])).toEqual([
      ["arch", "In", ["a", "b"]],
      ["x", "Exists", []],
      ["y", "DoesNotExist", []],
      ["rev", "NotIn", ["1", "2"]],
    ]);
  });

  test("two different values for one key are refused", () => {
    expect(() => toLabelSelector(parseSelector("a=1,a=2"))).toThrow("'a' must equal both '1' and '2'");
    expect(toLabelSelector(parseSelector("a=1,a=1")).matchLabels).toEqual({ a: "1" });
  });

  test("round trip keeps the meaning", () => {
    const text = "board=rpi4,rev!=1,arch in (a,b),x,!y";
    const back = fromLabelSelector(toLabelSelector(parseSelector(text)));
    for (const labels of <Record<string, string>[]>[
      { board: "rpi4", arch: "a", x: "" },
      { board: "rpi4", arch: "a", x: "", rev: "1" },
      { board: "rpi4", arch: "c", x: "" },
      { board: "rpi4", arch: "b", x: "", y: "" },
    ]) {
      expect(matches(back, labels)).toBe(matches(parseSelector(text), labels));
    }
  });

  test("reads upstream's structured selectors and checks them", () => {
    const msg = (operator: string, values: string[]) =>
      create(LabelSelectorSchema, {
        matchLabels: { board: "rpi4" },
        matchExpressions: [create(LabelSelectorRequirementSchema, { key: "arch", operator, values })],
      });
    expect(formatSelector(fromLabelSelector(msg("NotIn", ["x86"])))).toBe("board=rpi4,arch notin (x86)");
    expect(() => fromLabelSelector(msg("Gt", ["1"]))).toThrow("operator 'Gt' on 'arch' must be In, NotIn, Exists or DoesNotExist");
    expect(() => fromLabelSelector(msg("In", []))).toThrow("'arch' In needs at least one value");
    expect(() => fromLabelSelector(msg("Exists", ["1"]))).toThrow("'arch' Exists takes no values");
    expect(() => fromLabelSelector(msg("In", ["bad value"]))).toThrow("value 'bad value' must start and end");
    expect(() => fromLabelSelector(create(LabelSelectorSchema, { matchLabels: { "a/b/c": "1" } }))).toThrow("key name 'b/c'");
  });
});
