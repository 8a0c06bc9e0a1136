/**
 * Arguments and results travel as `google.protobuf.Value` (JSON), as upstream.
 * Numbers are doubles; there is no bytes type; `undefined` becomes null.
 */
import { create } from "@bufbuild/protobuf";
import { type Value, ValueSchema, NullValue } from "@bufbuild/protobuf/wkt";

export function toValue(x: unknown, path = "value"): Value {
  if (x === null || x === undefined) return create(ValueSchema, { kind: { case: "nullValue", value: NullValue.NULL_VALUE } });
  switch (typeof x) {
    case "number":
      if (!Number.isFinite(x)) throw new TypeError(`${path}: ${x} cannot travel as JSON`);
      return create(ValueSchema, { kind: { case: "numberValue", value: x } });
    case "bigint":
      return create(ValueSchema, { kind: { case: "numberValue", value: Number(x) } });
    case "string":
      return create(ValueSchema, { kind: { case: "stringValue", value: x } });
    case "boolean":
      return create(ValueSchema, { kind: { case: "boolValue", value: x } });
    case "object": {
      if (Array.isArray(x)) {
        return create(ValueSchema, { kind: { case: "listValue", value: { values: x.map((v, i) => toValue(v, `${path}[${i}]`)) } } });
      }
      if (x instanceof Date) return toValue(x.toISOString());
      if (x instanceof Uint8Array) throw new TypeError(`${path}: bytes cannot travel as JSON; use a byte stream`);
      const fields: Record<string, Value> = {};
      const source = typeof (x as { toJSON?: unknown }).toJSON === "function" ? (x as { toJSON(): unknown }).toJSON() : x;
      if (source !== x) return toValue(source, path);
      for (const [k, v] of Object.entries(x)) if (v !== undefined) fields[k] = toValue(v, `${path}.${k}`);
      return create(ValueSchema, { kind: { case: "structValue", value: { fields } } });
    }
    default:
      throw new TypeError(`${path}: a ${typeof x} cannot travel as JSON`);
  }
}

export function fromValue(v: Value | undefined): unknown {
  if (!v) return null;
  const k = v.kind;
  switch (k.case) {
    case "nullValue":
    case undefined:
      return null;
    case "numberValue":
    case "stringValue":
    case "boolValue":
      return k.value;
    case "listValue":
      return k.value.values.map(fromValue);
    case "structValue": {
      const out: Record<string, unknown> = {};
      for (const [key, val] of Object.entries(k.value.fields)) out[key] = fromValue(val);
      return out;
    }
  }
}
