/**
 * A small, typed validator for configuration values (driver `config:` maps, parts of
 * config files). Each field parses one value and says exactly what it expected, so a
 * mistake is reported once at load with its key path instead of failing later.
 */
import { describeValue } from "./errors.ts";

export class SchemaError extends Error {
  override name = "SchemaError";
  constructor(
    readonly keyPath: string,
    readonly problem: string,
  ) {
    super(keyPath ? `${keyPath}: ${problem}` : problem);
  }
}

export interface Field<T> {
  /** What the field accepts, in words, for error messages and `jmp driver list`. */
  readonly expected: string;
  readonly optional: boolean;
  readonly description?: string;
  parse(value: unknown, keyPath: string): T;
}

type FieldOptions = { description?: string };

function field<T>(expected: string, parse: (v: unknown, p: string) => T, opts?: FieldOptions): Field<T> {
  return { expected, optional: false, description: opts?.description, parse };
}

function fail(keyPath: string, expected: string, value: unknown): never {
  throw new SchemaError(keyPath, `expected ${expected}, got ${describeValue(value)}`);
}

export function string(opts?: FieldOptions & { nonEmpty?: boolean }): Field<string> {
  const expected = opts?.nonEmpty ? "a non-empty string" : "a string";
  return field(expected, (v, p) => {
    if (typeof v !== "string" || (opts?.nonEmpty && v === "")) fail(p, expected, v);
    return v;
  }, opts);
}

export function number(opts?: FieldOptions & { integer?: boolean; min?: number; max?: number }): Field<number> {
  let expected = opts?.integer ? "an integer" : "a number";
  if (opts?.min !== undefined && opts?.max !== undefined) expected += ` from ${opts.min} to ${opts.max}`;
  else if (opts?.min !== undefined) expected += ` of at least ${opts.min}`;
  else if (opts?.max !== undefined) expected += ` of at most ${opts.max}`;
  return field(expected, (v, p) => {
    // YAML authors often quote numbers; accept a numeric string rather than nag.
    const n = typeof v === "string" && v.trim() !== "" ? Number(v) : v;
    if (typeof n !== "number" || !Number.isFinite(n)) fail(p, expected, v);
    if (opts?.integer && !Number.isInteger(n)) fail(p, expected, v);
    if (opts?.min !== undefined && n < opts.min) fail(p, expected, v);
    if (opts?.max !== undefined && n > opts.max) fail(p, expected, v);
    return n;
  }, opts);
}

export function boolean(opts?: FieldOptions): Field<boolean> {
  return field("true or false", (v, p) => {
    if (typeof v !== "boolean") fail(p, "true or false", v);
    return v;
  }, opts);
}

export function oneOf<const T extends string>(values: readonly T[], opts?: FieldOptions): Field<T> {
  const expected = `one of ${values.map((x) => JSON.stringify(x)).join(", ")}`;
  return field(expected, (v, p) => {
    if (typeof v !== "string" || !values.includes(v as T)) fail(p, expected, v);
    return v as T;
  }, opts);
}

export function list<T>(item: Field<T>, opts?: FieldOptions): Field<T[]> {
  const expected = `a list of ${item.expected.replace(/^an? /, "")}s`;
  return field(expected, (v, p) => {
    if (!Array.isArray(v)) fail(p, expected, v);
    return v.map((x, i) => item.parse(x, `${p}[${i}]`));
  }, opts);
}

export function record<T>(value: Field<T>, opts?: FieldOptions): Field<Record<string, T>> {
  const expected = `a mapping of names to ${value.expected.replace(/^an? /, "")}s`;
  return field(expected, (v, p) => {
    if (!isPlainObject(v)) fail(p, expected, v);
    const out: Record<string, T> = {};
    for (const [k, x] of Object.entries(v)) out[k] = value.parse(x, joinPath(p, k));
    return out;
  }, opts);
}

/** Accepts either of two shapes, trying the first one first. */
export function either<A, B>(a: Field<A>, b: Field<B>, opts?: FieldOptions): Field<A | B> {
  const expected = `${a.expected} or ${b.expected}`;
  return field(expected, (v, p) => {
    try {
      return a.parse(v, p);
    } catch (first) {
      try {
        return b.parse(v, p);
      } catch {
        // Report the error of the shape the value resembles most: a mapping goes to
        // the mapping-shaped alternative.
        if (isPlainObject(v) && b.expected.includes("mapping")) return b.parse(v, p);
        throw first;
      }
    }
  }, opts);
}

export function anything(opts?: FieldOptions): Field<unknown> {
  return field("any value", (v) => v, opts);
}

export function optional<T>(f: Field<T>): Field<T | undefined> {
  return { ...f, optional: true, parse: (v, p) => (v === undefined || v === null ? undefined : f.parse(v, p)) };
}

export function withDefault<T>(f: Field<T>, value: T): Field<T> {
  return {
    ...f,
    optional: true,
    expected: f.expected,
    description: f.description ? `${f.description} (default ${JSON.stringify(value)})` : `default ${JSON.stringify(value)}`,
    parse: (v, p) => (v === undefined || v === null ? value : f.parse(v, p)),
  };
}

export type Shape = Record<string, Field<unknown>>;
export type Infer<S extends Shape> = { [K in keyof S]: S[K] extends Field<infer T> ? T : never };

/** Parses a mapping against a shape; unknown keys are errors (they are usually typos). */
export function object<S extends Shape>(shape: S, opts?: FieldOptions): Field<Infer<S>> {
  return field("a mapping", (v, p) => parseShape(shape, v ?? {}, p), opts);
}

export function parseShape<S extends Shape>(shape: S, value: unknown, keyPath = ""): Infer<S> {
  if (!isPlainObject(value)) fail(keyPath, "a mapping", value);
  const known = Object.keys(shape);
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) {
      const hint = closest(key, known);
      const suggestion = hint ? `did you mean '${hint}'? ` : "";
      const list = known.length ? `known keys: ${known.join(", ")}` : "this takes no keys";
      throw new SchemaError(joinPath(keyPath, key), `unknown key (${suggestion}${list})`);
    }
  }
  const out: Record<string, unknown> = {};
  for (const [key, f] of Object.entries(shape)) {
    const v = value[key];
    if ((v === undefined || v === null) && !f.optional) {
      throw new SchemaError(joinPath(keyPath, key), `missing; expected ${f.expected}`);
    }
    out[key] = f.parse(v, joinPath(keyPath, key));
  }
  return out as Infer<S>;
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export function joinPath(base: string, key: string): string {
  const part = /^[A-Za-z_][\w-]*$/.test(key) ? key : JSON.stringify(key);
  return base ? `${base}.${part}` : part;
}

/** The known key nearest to a misspelt one, when it is near enough to be a typo. */
export function closest(word: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}
