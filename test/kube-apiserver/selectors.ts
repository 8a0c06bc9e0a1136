/**
 * `labelSelector` and `fieldSelector` query parameters, parsed once per request and matched
 * against stored objects. Labels and Selectors, "Label selectors" ("Equality-based
 * requirement", "Set-based requirement"); Field Selectors ("Supported fields", "Supported
 * operators": =, ==, != only, and for custom resources only metadata.name and
 * metadata.namespace).
 */
import { badRequest } from "./status.ts";

type Labels = Record<string, string> | undefined;
type Requirement = (labels: Labels) => boolean;

const KEY = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

/** Splits on commas outside parentheses, so `a in (x,y),b` is two requirements. */
function splitTop(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    if (text[i] === "(") depth++;
    else if (text[i] === ")") depth--;
    else if (text[i] === "," && depth === 0) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.slice(start));
  return parts.map((p) => p.trim()).filter((p) => p !== "");
}

function checkKey(key: string, whole: string): string {
  if (!KEY.test(key)) throw badRequest(`unable to parse requirement: invalid label key "${key}" in "${whole}"`);
  return key;
}

function checkValue(value: string, whole: string): string {
  if (!VALUE.test(value)) throw badRequest(`unable to parse requirement: invalid label value "${value}" in "${whole}"`);
  return value;
}

function requirement(text: string): Requirement {
  let m = /^!\s*(\S+)$/.exec(text);
  if (m) {
    const key = checkKey(m[1]!, text);
    return (l) => l?.[key] === undefined;
  }
  m = /^(\S+?)\s+(in|notin)\s*\((.*)\)$/.exec(text);
  if (m) {
    const key = checkKey(m[1]!, text);
    const values = new Set(m[3]!.split(",").map((v) => checkValue(v.trim(), text)));
    // notin, like !=, also matches objects that lack the label.
    return m[2] === "in" ? (l) => l?.[key] !== undefined && values.has(l[key]!) : (l) => l?.[key] === undefined || !values.has(l[key]!);
  }
  m = /^([^=!\s]+)\s*(==|=|!=)\s*(\S*)$/.exec(text);
  if (m) {
    const key = checkKey(m[1]!, text);
    const value = checkValue(m[3]!, text);
    return m[2] === "!=" ? (l) => l?.[key] !== value : (l) => l?.[key] === value;
  }
  if (/^\S+$/.test(text)) {
    const key = checkKey(text, text);
    return (l) => l?.[key] !== undefined;
  }
  throw badRequest(`unable to parse requirement: "${text}" is not a label selector requirement`);
}

/** A predicate over an object's labels; an absent or empty selector matches everything. */
export function parseLabelSelector(text: string | null): Requirement {
  const reqs = splitTop(text ?? "").map(requirement);
  return (labels) => reqs.every((r) => r(labels));
}

interface Meta {
  name?: string;
  namespace?: string;
}

/** A predicate over metadata.name and metadata.namespace; other fields are refused as the real server refuses them for custom resources. */
export function parseFieldSelector(text: string | null): (meta: Meta) => boolean {
  const reqs = splitTop(text ?? "").map((part) => {
    const m = /^([^=!\s]+)\s*(==|=|!=)\s*(\S*)$/.exec(part);
    if (!m) throw badRequest(`invalid selector: '${part}'; can't understand '${part}'`);
    const [, field, op, value] = m;
    if (field !== "metadata.name" && field !== "metadata.namespace") throw badRequest(`field label not supported: ${field}`);
    const get = (meta: Meta) => (field === "metadata.name" ? meta.name : meta.namespace);
    return op === "!=" ? (meta: Meta) => get(meta) !== value : (meta: Meta) => get(meta) === value;
  });
  return (meta) => reqs.every((r) => r(meta));
}
