/**
 * What a real API server does with a CRD's structural schema on every write of a custom
 * resource, so that a field the controller writes but the CRD lacks is lost here as on a
 * cluster, and a wrong type or missing required field is refused here as there.
 * Extend the Kubernetes API with CustomResourceDefinitions: "Field pruning" (unknown fields
 * dropped silently), "Defaulting" (including "Defaulting and Nullable": a null in a
 * non-nullable field is dropped first), "Validation" (type, enum, required, lengths,
 * pattern, minimum, maxProperties). CEL rules (x-kubernetes-validations) are not evaluated.
 */

type Schema = Record<string, any>;
type Json = any;

const isObject = (v: Json): v is Record<string, Json> => typeof v === "object" && v !== null && !Array.isArray(v);

function typeOf(v: Json): string {
  if (Array.isArray(v)) return "array";
  if (v === null) return "null";
  if (typeof v === "number") return Number.isInteger(v) ? "integer" : "number";
  return typeof v;
}

function typeMatches(expected: string, v: Json): boolean {
  const actual = typeOf(v);
  return actual === expected || (expected === "number" && actual === "integer");
}

/** Drops unknown fields and nulls, fills defaults; returns the cleaned value. */
function prune(schema: Schema | undefined, v: Json): Json {
  if (!schema || schema["x-kubernetes-preserve-unknown-fields"] === true && !schema.properties) return v;
  if (isObject(v) && (schema.type === "object" || schema.properties || schema.additionalProperties)) {
    const out: Record<string, Json> = {};
    for (const [k, child] of Object.entries(v)) {
      const sub = schema.properties?.[k] ?? (isObject(schema.additionalProperties) ? schema.additionalProperties : undefined);
      const known = schema.properties?.[k] !== undefined || schema.additionalProperties !== undefined || schema["x-kubernetes-preserve-unknown-fields"] === true;
      if (!known) continue;
      if (child === null && !sub?.nullable) continue;
      out[k] = prune(sub, child);
    }
    for (const [k, sub] of Object.entries((schema.properties ?? {}) as Record<string, Schema>)) {
      if (sub && out[k] === undefined && sub.default !== undefined) out[k] = prune(sub, structuredClone(sub.default));
    }
    return out;
  }
  if (Array.isArray(v) && schema.items) return v.map((i) => (i === null && !schema.items.nullable ? i : prune(schema.items, i)));
  return v;
}

function validate(schema: Schema | undefined, v: Json, path: string, errors: string[]): void {
  if (!schema) return;
  const at = path || "<root>";
  if (v === null) {
    if (!schema.nullable) errors.push(`${at}: Invalid value: "null": ${at} in body must be of type ${schema.type}: "null"`);
    return;
  }
  if (schema.type && !typeMatches(schema.type, v)) {
    errors.push(`${at}: Invalid value: "${typeOf(v)}": ${at} in body must be of type ${schema.type}: "${typeOf(v)}"`);
    return;
  }
  if (schema.enum && !schema.enum.some((e: Json) => Bun.deepEquals(e, v))) {
    errors.push(`${at}: Unsupported value: ${JSON.stringify(v)}: supported values: ${schema.enum.map((e: Json) => JSON.stringify(e)).join(", ")}`);
  }
  if (typeof v === "string") {
    if (schema.maxLength !== undefined && v.length > schema.maxLength) errors.push(`${at}: Too long: may not be more than ${schema.maxLength} bytes`);
    if (schema.minLength !== undefined && v.length < schema.minLength) errors.push(`${at}: Invalid value: "${v}": ${at} in body should be at least ${schema.minLength} chars long`);
    if (schema.pattern && !new RegExp(schema.pattern).test(v)) errors.push(`${at}: Invalid value: "${v}": ${at} in body should match '${schema.pattern}'`);
    if (schema.format === "date-time" && Number.isNaN(Date.parse(v))) errors.push(`${at}: Invalid value: "${v}": ${at} in body must be of type date-time: "${v}"`);
  }
  if (typeof v === "number" && schema.minimum !== undefined && v < schema.minimum) errors.push(`${at}: Invalid value: ${v}: ${at} in body should be greater than or equal to ${schema.minimum}`);
  if (isObject(v)) {
    if (schema.maxProperties !== undefined && Object.keys(v).length > schema.maxProperties) errors.push(`${at}: Too many: ${Object.keys(v).length}: must have at most ${schema.maxProperties} items`);
    for (const r of (schema.required ?? []) as string[]) if (v[r] === undefined) errors.push(`${path ? `${path}.` : ""}${r}: Required value`);
    for (const [k, child] of Object.entries(v)) {
      const sub = schema.properties?.[k] ?? (isObject(schema.additionalProperties) ? schema.additionalProperties : undefined);
      validate(sub, child, path ? `${path}.${k}` : k, errors);
    }
  }
  if (Array.isArray(v)) v.forEach((item, i) => validate(schema.items, item, `${at}[${i}]`, errors));
}

/**
 * The object as a real server stores it (pruned, defaulted) and the validation errors
 * (field path and reason each), for the top level, spec and status; metadata is the server's.
 */
export function applySchema(schema: Schema | undefined, obj: Record<string, Json>): { object: Record<string, Json>; errors: string[] } {
  if (!schema) return { object: obj, errors: [] };
  const { apiVersion, kind, metadata, ...rest } = obj;
  const cleaned = prune({ ...schema, properties: { ...schema.properties, apiVersion: undefined, kind: undefined, metadata: undefined } }, rest) as Record<string, Json>;
  const object = { apiVersion, kind, metadata, ...cleaned };
  const errors: string[] = [];
  const { metadata: _m, apiVersion: _a, kind: _k, ...checked } = object;
  validate({ ...schema, properties: { ...schema.properties, metadata: undefined, apiVersion: undefined, kind: undefined } }, checked, "", errors);
  return { object, errors };
}
