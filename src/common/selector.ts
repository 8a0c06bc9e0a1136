/**
 * Kubernetes label selectors, as `kubectl -l` and upstream Jumpstarter accept them:
 * `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`, joined by commas
 * (all must hold). The same selector also travels as the structured proto
 * `LabelSelector` (matchLabels + matchExpressions) on the legacy controller API.
 */
import { create } from "@bufbuild/protobuf";
import {
  type LabelSelector,
  LabelSelectorRequirementSchema,
  LabelSelectorSchema,
} from "../gen/jumpstarter/v1/kubernetes_pb.ts";
import { UserError } from "./errors.ts";

export type Operator = "Equals" | "NotEquals" | "In" | "NotIn" | "Exists" | "DoesNotExist";

export interface Requirement {
  readonly key: string;
  readonly operator: Operator;
  /** One value for Equals/NotEquals, one or more for In/NotIn, none otherwise. */
  readonly values: readonly string[];
}

/** All requirements must hold; an empty selector matches everything. */
export interface Selector {
  readonly requirements: readonly Requirement[];
}

export type Labels = Readonly<Record<string, string>>;

export class SelectorError extends UserError {
  override name = "SelectorError";
}

const NAME_RE = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const DNS_SUBDOMAIN_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/**
 * Why `key` is not a Kubernetes label key (an optional DNS-subdomain prefix of at most
 * 253 characters and `/`, then a name of at most 63), or undefined when it is one.
 */
export function labelKeyProblem(key: string): string | undefined {
  const slash = key.indexOf("/");
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined) {
    if (prefix === "") return `key '${key}' has an empty prefix before '/'`;
    if (prefix.length > 253) return `key prefix '${prefix}' is longer than 253 characters`;
    if (!DNS_SUBDOMAIN_RE.test(prefix)) {
      return `key prefix '${prefix}' must be a DNS subdomain (lower-case letters, digits, '-' and '.')`;
    }
  }
  if (name === "") return `key '${key}' has an empty name`;
  if (name.length > 63) return `key name '${name}' is longer than 63 characters`;
  if (!NAME_RE.test(name)) {
    return `key name '${name}' must start and end with a letter or digit and contain only letters, digits, '-', '_' and '.'`;
  }
  return undefined;
}

/** Why `value` is not a Kubernetes label value (empty, or like a key name), or undefined. */
export function labelValueProblem(value: string): string | undefined {
  if (value === "") return undefined;
  if (value.length > 63) return `value '${value}' is longer than 63 characters`;
  if (!NAME_RE.test(value)) {
    return `value '${value}' must start and end with a letter or digit and contain only letters, digits, '-', '_' and '.'`;
  }
  return undefined;
}

/** Throws a SelectorError naming the first bad key or value of a label set. */
export function validateLabels(labels: Labels, what = "labels"): void {
  for (const [key, value] of Object.entries(labels)) {
    const problem = labelKeyProblem(key) ?? labelValueProblem(value);
    if (problem) throw new SelectorError(`${what}: ${problem}`);
  }
}

const SPECIAL = new Set([" ", "\t", "\n", "\r", ",", "(", ")", "=", "!"]);

/** A cursor over the selector text; positions in messages are 1-based columns. */
class Parser {
  private pos = 0;
  constructor(private readonly text: string) {}

  fail(problem: string, at = this.pos): never {
    throw new SelectorError(`'${this.text}' is not a label selector: ${problem} at ${at + 1}`);
  }

  private skipSpace(): void {
    while (this.pos < this.text.length && /\s/.test(this.text[this.pos]!)) this.pos++;
  }

  private peek(): string | undefined {
    return this.text[this.pos];
  }

  private startsWith(s: string): boolean {
    return this.text.startsWith(s, this.pos);
  }

  private word(): { word: string; at: number } {
    this.skipSpace();
    const at = this.pos;
    while (this.pos < this.text.length && !SPECIAL.has(this.text[this.pos]!)) this.pos++;
    return { word: this.text.slice(at, this.pos), at };
  }

  private key(): string {
    const { word, at } = this.word();
    if (word === "") {
      const c = this.peek();
      this.fail(c === undefined || c === "," ? "empty requirement" : `expected a label key, found '${c}'`, at);
    }
    const problem = labelKeyProblem(word);
    if (problem) this.fail(problem, at);
    return word;
  }

  private value(): string {
    const { word, at } = this.word();
    const problem = labelValueProblem(word);
    if (problem) this.fail(problem, at);
    return word;
  }

  private valueSet(op: string): string[] {
    this.skipSpace();
    if (this.peek() !== "(") this.fail(`expected '(' after '${op}'`);
    this.pos++;
    this.skipSpace();
    if (this.peek() === ")") this.fail(`'${op}' needs at least one value`);
    const values: string[] = [];
    for (;;) {
      const v = this.value();
      if (!values.includes(v)) values.push(v);
      this.skipSpace();
      const c = this.peek();
      if (c === ",") { this.pos++; continue; }
      if (c === ")") { this.pos++; return values; }
      this.fail(c === undefined ? "missing ')'" : `expected ',' or ')', found '${c}'`);
    }
  }

  private requirement(): Requirement {
    this.skipSpace();
    if (this.peek() === "!" && !this.startsWith("!=")) {
      this.pos++;
      return { key: this.key(), operator: "DoesNotExist", values: [] };
    }
    const key = this.key();
    this.skipSpace();
    if (this.startsWith("==")) { this.pos += 2; return { key, operator: "Equals", values: [this.value()] }; }
    if (this.startsWith("!=")) { this.pos += 2; return { key, operator: "NotEquals", values: [this.value()] }; }
    if (this.startsWith("=")) { this.pos += 1; return { key, operator: "Equals", values: [this.value()] }; }
    const c = this.peek();
    if (c === undefined || c === ",") return { key, operator: "Exists", values: [] };
    const { word, at } = this.word();
    if (word === "in") return { key, operator: "In", values: this.valueSet("in") };
    if (word === "notin") return { key, operator: "NotIn", values: this.valueSet("notin") };
    this.fail(`expected '=', '==', '!=', 'in', 'notin' or ',' after key '${key}'`, word === "" ? this.pos : at);
  }

  parse(): Selector {
    const requirements: Requirement[] = [];
    this.skipSpace();
    if (this.pos === this.text.length) return { requirements };
    for (;;) {
      requirements.push(this.requirement());
      this.skipSpace();
      const c = this.peek();
      if (c === undefined) return { requirements };
      if (c !== ",") this.fail(`expected ',' or the end, found '${c}'`);
      this.pos++;
    }
  }
}

/** Parses selector text; throws a SelectorError naming the text and the 1-based column. */
export function parseSelector(text: string): Selector {
  return new Parser(text).parse();
}

export function matches(selector: Selector, labels: Labels): boolean {
  return selector.requirements.every((r) => {
    const has = Object.hasOwn(labels, r.key);
    const value = labels[r.key];
    switch (r.operator) {
      case "Equals": return has && value === r.values[0];
      case "NotEquals": return !has || value !== r.values[0];
      case "In": return has && r.values.includes(value!);
      case "NotIn": return !has || !r.values.includes(value!);
      case "Exists": return has;
      case "DoesNotExist": return !has;
    }
  });
}

/** The canonical text of a selector; parsing it gives the same selector back. */
export function formatSelector(selector: Selector): string {
  return selector.requirements.map((r) => {
    switch (r.operator) {
      case "Equals": return `${r.key}=${r.values[0]}`;
      case "NotEquals": return `${r.key}!=${r.values[0]}`;
      case "In": return `${r.key} in (${r.values.join(",")})`;
      case "NotIn": return `${r.key} notin (${r.values.join(",")})`;
      case "Exists": return r.key;
      case "DoesNotExist": return `!${r.key}`;
    }
  }).join(",");
}

/** The `k=v` requirements as a label set (upstream copies them onto the lease's labels). */
export function equalityLabels(selector: Selector): Record<string, string> {
  const out: Record<string, string> = {};
  for (const r of selector.requirements) if (r.operator === "Equals") out[r.key] = r.values[0]!;
  return out;
}

/**
 * The proto form: `k=v` become matchLabels; `!=` on one key merge into one NotIn, as
 * upstream's controller does. Two different `k=v` for one key can never match and are
 * rejected, as upstream rejects them.
 */
export function toLabelSelector(selector: Selector): LabelSelector {
  const matchLabels: Record<string, string> = {};
  const notEquals = new Map<string, string[]>();
  const matchExpressions = [];
  for (const r of selector.requirements) {
    if (r.operator === "Equals") {
      const existing = matchLabels[r.key];
      if (existing !== undefined && existing !== r.values[0]) {
        throw new SelectorError(
          `'${formatSelector(selector)}' is not a label selector: '${r.key}' must equal both '${existing}' and '${r.values[0]}'`,
        );
      }
      matchLabels[r.key] = r.values[0]!;
    } else if (r.operator === "NotEquals") {
      const values = notEquals.get(r.key) ?? [];
      if (!values.includes(r.values[0]!)) values.push(r.values[0]!);
      notEquals.set(r.key, values);
    } else {
      matchExpressions.push(create(LabelSelectorRequirementSchema, { key: r.key, operator: r.operator, values: [...r.values] }));
    }
  }
  for (const [key, values] of notEquals) {
    matchExpressions.push(create(LabelSelectorRequirementSchema, { key, operator: "NotIn", values }));
  }
  return create(LabelSelectorSchema, { matchLabels, matchExpressions });
}

/** A LabelSelector as Kubernetes objects carry it: the proto message, or plain YAML/JSON. */
export interface PlainLabelSelector {
  readonly matchLabels: Readonly<Record<string, string>>;
  readonly matchExpressions: readonly { readonly key: string; readonly operator: string; readonly values: readonly string[] }[];
}

/** Reads the structured form, checking keys, values and operators like Kubernetes does. */
export function fromLabelSelector(message: PlainLabelSelector): Selector {
  const bad = (problem: string): never => {
    throw new SelectorError(`the label selector is not valid: ${problem}`);
  };
  const requirements: Requirement[] = [];
  for (const [key, value] of Object.entries(message.matchLabels)) {
    const problem = labelKeyProblem(key) ?? labelValueProblem(value);
    if (problem) bad(`matchLabels: ${problem}`);
    requirements.push({ key, operator: "Equals", values: [value] });
  }
  for (const e of message.matchExpressions) {
    const problem = labelKeyProblem(e.key) ?? e.values.map(labelValueProblem).find((p) => p !== undefined);
    if (problem) bad(`matchExpressions: ${problem}`);
    switch (e.operator) {
      case "In":
      case "NotIn":
        if (e.values.length === 0) bad(`matchExpressions: '${e.key}' ${e.operator} needs at least one value`);
        requirements.push({ key: e.key, operator: e.operator, values: [...new Set(e.values)] });
        break;
      case "Exists":
      case "DoesNotExist":
        if (e.values.length > 0) bad(`matchExpressions: '${e.key}' ${e.operator} takes no values`);
        requirements.push({ key: e.key, operator: e.operator, values: [] });
        break;
      default:
        bad(`matchExpressions: operator '${e.operator}' on '${e.key}' must be In, NotIn, Exists or DoesNotExist`);
    }
  }
  return { requirements };
}
