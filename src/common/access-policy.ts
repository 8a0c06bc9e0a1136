/**
 * Upstream's ExporterAccessPolicy (`jumpstarter.dev/v1alpha1`): which clients may
 * lease which exporters, at what priority, for how long, and whether only as spot
 * (preemptible) leases. Parsed from the YAML an admin applies and checked field by
 * field, so a typo is one error naming its path and nothing is applied; the
 * controller checks what arrives over the admin API with the same code.
 */
import { parseAllDocuments } from "yaml";
import { parseDuration } from "./duration.ts";
import { ConfigError } from "./errors.ts";
import {
  boolean, type Field, isPlainObject, list, number, object, optional, parseShape, record, SchemaError, string,
} from "./schema.ts";
import { fromLabelSelector, type Selector, toLabelSelector } from "./selector.ts";

export const POLICY_API_VERSION = "jumpstarter.dev/v1alpha1";
export const POLICY_KIND = "ExporterAccessPolicy";

/** One rule of a policy: the clients it admits and on what terms. */
export interface AccessRule {
  description: string;
  /** Higher goes first in the queue; upstream's integer, never negative here. */
  priority: number;
  /** A cap on a lease's duration and its extensions; undefined for none. */
  maximumDurationMs?: number;
  /** Leases admitted only by spot rules are ended when a non-spot lease needs the exporter. */
  spotAccess: boolean;
  /** Any of these client selectors admits a client (an empty list admits nobody). */
  from: Selector[];
}

export interface AccessPolicy {
  namespace: string;
  name: string;
  exporterSelector: Selector;
  policies: AccessRule[];
}

const DNS_LABEL_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

function dnsName(): Field<string> {
  const expected = "a name of lower-case letters, digits and '-' (at most 63)";
  return {
    expected,
    optional: false,
    parse(v, p) {
      if (typeof v !== "string" || v.length > 63 || !DNS_LABEL_RE.test(v)) throw new SchemaError(p, `expected ${expected}, got ${JSON.stringify(v)}`);
      return v;
    },
  };
}

/** A Kubernetes LabelSelector (matchLabels, matchExpressions), checked as the API server checks it. */
function labelSelector(): Field<Selector> {
  const shape = {
    matchLabels: optional(record(string())),
    matchExpressions: optional(list(object({ key: string({ nonEmpty: true }), operator: string({ nonEmpty: true }), values: optional(list(string())) }))),
  };
  return {
    expected: "a label selector (matchLabels, matchExpressions)",
    optional: false,
    parse(v, p) {
      const s = parseShape(shape, v ?? {}, p);
      try {
        return fromLabelSelector({
          matchLabels: s.matchLabels ?? {},
          matchExpressions: (s.matchExpressions ?? []).map((e) => ({ key: e.key, operator: e.operator, values: e.values ?? [] })),
        });
      } catch (e) {
        throw new SchemaError(p, (e as Error).message.replace(/^the label selector is not valid: /, ""));
      }
    },
  };
}

/** Go's metav1.Duration as upstream writes it ("24h", "1h30m"); ours also takes "1d" and ISO 8601. */
function duration(): Field<number> {
  const expected = "a positive duration such as 30m, 12h or 1h30m";
  return {
    expected,
    optional: false,
    parse(v, p) {
      let ms: number;
      try {
        if (typeof v !== "string") throw new Error();
        ms = parseDuration(v);
      } catch {
        throw new SchemaError(p, `expected ${expected}, got ${JSON.stringify(v)}`);
      }
      if (ms <= 0) throw new SchemaError(p, `expected ${expected}, got ${JSON.stringify(v)}`);
      return ms;
    },
  };
}

const RULE = {
  description: optional(string()),
  priority: optional(number({ integer: true, min: 0, max: 2_147_483_647 })),
  maximumDuration: optional(duration()),
  spotAccess: optional(boolean()),
  from: optional(list(object({ clientSelector: labelSelector() }))),
};

const DOCUMENT = {
  apiVersion: string(),
  kind: string(),
  metadata: object({
    name: dnsName(),
    namespace: optional(dnsName()),
    labels: optional(record(string())),
    annotations: optional(record(string())),
  }),
  spec: object({
    exporterSelector: optional(labelSelector()),
    policies: optional(list(object(RULE))),
  }),
  // What `kubectl get -o yaml` adds; ignored so that such a file can be applied back.
  status: optional({ expected: "a mapping", optional: true, parse: (v) => v }),
};

/**
 * One policy from its parsed YAML/JSON object. `keyPath` prefixes error paths (for a
 * document in a file with several); `namespace` is used when the document names none.
 */
export function parseAccessPolicy(value: unknown, namespace: string, keyPath = ""): AccessPolicy {
  if (isPlainObject(value) && value.metadata !== undefined && isPlainObject(value.metadata)) {
    // Server-set metadata a `kubectl get -o yaml` carries; harmless to apply back.
    const { uid: _u, resourceVersion: _r, generation: _g, creationTimestamp: _c, managedFields: _m, ...rest } = value.metadata;
    value = { ...value, metadata: rest };
  }
  const doc = parseShape(DOCUMENT, value, keyPath);
  const at = (key: string) => (keyPath ? `${keyPath}.${key}` : key);
  if (doc.apiVersion !== POLICY_API_VERSION) throw new SchemaError(at("apiVersion"), `expected ${POLICY_API_VERSION}, got ${JSON.stringify(doc.apiVersion)}`);
  if (doc.kind !== POLICY_KIND) throw new SchemaError(at("kind"), `expected ${POLICY_KIND}, got ${JSON.stringify(doc.kind)}`);
  return {
    namespace: doc.metadata.namespace ?? namespace,
    name: doc.metadata.name,
    exporterSelector: doc.spec.exporterSelector ?? { requirements: [] },
    policies: (doc.spec.policies ?? []).map((r) => ({
      description: r.description ?? "",
      priority: r.priority ?? 0,
      maximumDurationMs: r.maximumDuration,
      spotAccess: r.spotAccess ?? false,
      from: (r.from ?? []).map((f) => f.clientSelector),
    })),
  };
}

/**
 * Every policy in a YAML file's text: one document, several separated by `---`, or a
 * `kind: List` with `items`. Any error names the file and the key path; then none applies.
 */
export function parseAccessPolicyFile(text: string, file: string, namespace: string): AccessPolicy[] {
  const docs = parseAllDocuments(text, { uniqueKeys: true });
  const all = Array.isArray(docs) ? docs : [docs];
  const out: AccessPolicy[] = [];
  all.forEach((doc, i) => {
    const error = doc.errors[0];
    if (error) {
      const pos = error.linePos?.[0];
      throw new ConfigError(file, pos ? `line ${pos.line}, column ${pos.col}` : "", `invalid YAML: ${error.message.split("\n")[0]}`);
    }
    const value = doc.toJS() as unknown;
    if (value === null || value === undefined) return;
    const prefix = all.length > 1 ? `document ${i + 1}` : "";
    try {
      if (isPlainObject(value) && value.kind === "List") {
        if (!Array.isArray(value.items)) throw new SchemaError(prefix ? `${prefix}.items` : "items", "expected a list of ExporterAccessPolicy objects");
        value.items.forEach((item, j) => out.push(parseAccessPolicy(item, namespace, `${prefix ? `${prefix}.` : ""}items[${j}]`)));
      } else {
        out.push(parseAccessPolicy(value, namespace, prefix));
      }
    } catch (e) {
      if (e instanceof SchemaError) throw new ConfigError(file, e.keyPath, e.problem);
      throw e;
    }
  });
  if (out.length === 0) throw new ConfigError(file, "", `holds no ${POLICY_KIND}`);
  const seen = new Set<string>();
  for (const p of out) {
    const key = `${p.namespace}/${p.name}`;
    if (seen.has(key)) throw new ConfigError(file, "", `policy ${key} appears twice`);
    seen.add(key);
  }
  return out;
}

/** A LabelSelector as upstream's YAML writes it, empty parts left out. */
function selectorDocument(selector: Selector): Record<string, unknown> {
  const m = toLabelSelector(selector);
  const out: Record<string, unknown> = {};
  if (Object.keys(m.matchLabels).length) out.matchLabels = { ...m.matchLabels };
  if (m.matchExpressions.length) {
    out.matchExpressions = m.matchExpressions.map((e) => (e.values.length ? { key: e.key, operator: e.operator, values: [...e.values] } : { key: e.key, operator: e.operator }));
  }
  return out;
}

/** The policy's `spec` in upstream's shape: what a Kubernetes object and `jmp admin policy list -o yaml` carry. */
export function policySpecDocument(policy: AccessPolicy): Record<string, unknown> {
  return {
    exporterSelector: selectorDocument(policy.exporterSelector),
    policies: policy.policies.map((r) => ({
      ...(r.description ? { description: r.description } : {}),
      priority: r.priority,
      ...(r.maximumDurationMs !== undefined ? { maximumDuration: formatGoDuration(r.maximumDurationMs) } : {}),
      ...(r.spotAccess ? { spotAccess: true } : {}),
      from: r.from.map((s) => ({ clientSelector: selectorDocument(s) })),
    })),
  };
}

/** The whole object, as `kubectl apply -f` and `jmp admin policy apply -f` take it back. */
export function policyDocument(policy: AccessPolicy): Record<string, unknown> {
  return {
    apiVersion: POLICY_API_VERSION,
    kind: POLICY_KIND,
    metadata: { name: policy.name, namespace: policy.namespace },
    spec: policySpecDocument(policy),
  };
}

/** Go's time.Duration text ("12h0m0s" reads back; "12h" is what people write): hours, minutes, seconds. */
function formatGoDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return `${h ? `${h}h` : ""}${m ? `${m}m` : ""}${sec || (!h && !m) ? `${sec}s` : ""}`;
}
