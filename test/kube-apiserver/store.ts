/**
 * The double's state: every object of every served resource, one resourceVersion counter
 * for the whole server, a bounded history of changes for watches, and the rules the real
 * API server applies on each write. Section names cite the Kubernetes documentation the
 * behaviour follows ("API Concepts" = kubernetes.io/docs/reference/using-api/api-concepts,
 * "API conventions" = the sig-architecture api-conventions document, "CustomResourceDefinitions"
 * = the task page "Extend the Kubernetes API with CustomResourceDefinitions").
 */
import { mergePatch, jsonPatch } from "./patch.ts";
import { applySchema } from "./schema.ts";
import { alreadyExists, ApiError, badRequest, conflict, expired, invalid, notFound, type ResourceName } from "./status.ts";

export type Obj = Record<string, any>;

export interface ResourceDef extends ResourceName {
  version: string;
  kind: string;
  singular: string;
  namespaced: boolean;
  /** Writes to the main resource keep status, writes to /status keep everything else. */
  statusSubresource: boolean;
  /** A custom resource: metadata.generation is kept, strategic merge patch is refused. */
  custom: boolean;
  /** The CRD version's openAPIV3Schema: writes are pruned, defaulted and validated against it. */
  schema?: Record<string, any>;
}

export type EventType = "ADDED" | "MODIFIED" | "DELETED";

interface Change {
  type: EventType;
  rv: number;
  /** When it was made (ms since the epoch): to line a story up with the logs. */
  at: number;
  resource: string;
  object: Obj;
  /** The object before a MODIFIED change, so a selector watch can tell entering from leaving. */
  before?: Obj;
}

export interface WatchFilter {
  namespace?: string;
  matches(obj: Obj): boolean;
}

type Listener = (type: EventType, object: Obj) => void;

export const resourceKey = (r: ResourceName) => `${r.plural}.${r.group}`;

const objectKey = (namespace: string | undefined, name: string) => `${namespace ?? ""}/${name}`;

// RFC 3339 at whole seconds, as metav1.Time serializes.
const now = () => new Date().toISOString().replace(/\.\d+Z$/, "Z");

// API conventions, "Idempotency": generateName gets a random suffix from this alphabet
// (no vowels, so no words), five characters long.
const SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789";
const randomSuffix = () => Array.from({ length: 5 }, () => SUFFIX_ALPHABET[Math.floor(Math.random() * SUFFIX_ALPHABET.length)]).join("");

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Everything but metadata and status: what bumps metadata.generation (API conventions, "Metadata"). */
function specPart(obj: Obj): Obj {
  const { metadata: _m, status: _s, ...rest } = obj;
  return rest;
}

function sameExceptVersion(a: Obj, b: Obj): boolean {
  const strip = (o: Obj) => ({ ...o, metadata: { ...o.metadata, resourceVersion: undefined } });
  return Bun.deepEquals(strip(a), strip(b));
}

/** Pruned and defaulted as the CRD's schema says, or 422 Invalid listing every violation. */
function conform(def: ResourceDef, obj: Obj): Obj {
  if (!def.schema) return obj;
  const { object, errors } = applySchema(def.schema, obj);
  if (errors.length) {
    const name = obj.metadata?.name ?? "";
    const list = errors.length === 1 ? errors[0] : `[${errors.join(", ")}]`;
    throw new ApiError(422, "Invalid", `${def.kind}.${def.group} "${name}" is invalid: ${list}`, {
      name, group: def.group, kind: def.kind,
      causes: errors.map((e) => ({ reason: "FieldValueInvalid", message: e.slice(e.indexOf(": ") + 2), field: e.slice(0, e.indexOf(": ")) })),
    });
  }
  return object;
}

export class ObjectStore {
  private rv = 0;
  private readonly objects = new Map<string, Map<string, Obj>>();
  private readonly history: Change[] = [];
  /** The newest resourceVersion no longer in history (0 while nothing was dropped). */
  private compacted = 0;
  private readonly listeners = new Set<{ resource: string; listener: (c: Change) => void }>();

  constructor(private historySize: number) {}

  get resourceVersion(): string {
    return String(this.rv);
  }

  setHistorySize(n: number): void {
    this.historySize = n;
    this.trim();
  }

  private bucket(def: ResourceDef): Map<string, Obj> {
    const key = resourceKey(def);
    let b = this.objects.get(key);
    if (!b) this.objects.set(key, (b = new Map()));
    return b;
  }

  private trim(): void {
    while (this.history.length > this.historySize) this.compacted = this.history.shift()!.rv;
  }

  private record(def: ResourceDef, type: EventType, object: Obj, before?: Obj): void {
    const change: Change = { type, rv: this.rv, at: Date.now(), resource: resourceKey(def), object, before };
    this.history.push(change);
    this.trim();
    for (const l of this.listeners) if (l.resource === change.resource) l.listener(change);
  }

  /** Drops a resource's objects (its CRD was deleted), each with a DELETED event. */
  dropAll(def: ResourceDef): void {
    for (const obj of [...this.bucket(def).values()]) this.remove(def, obj);
  }

  /** The kept changes of one object, oldest first (as many as the watch history still holds). */
  changesOf(def: ResourceDef, namespace: string | undefined, name: string): { type: EventType; rv: number; at: number; object: Obj }[] {
    const resource = resourceKey(def);
    return this.history
      .filter((c) => c.resource === resource && c.object.metadata.name === name && (namespace === undefined || c.object.metadata.namespace === namespace))
      .map(({ type, rv, at, object }) => structuredClone({ type, rv, at, object }));
  }

  all(def: ResourceDef, namespace?: string): Obj[] {
    const out = [...this.bucket(def).values()].filter((o) => namespace === undefined || o.metadata.namespace === namespace);
    return structuredClone(out);
  }

  get(def: ResourceDef, namespace: string | undefined, name: string): Obj {
    const obj = this.bucket(def).get(objectKey(namespace, name));
    if (!obj) throw notFound(def, name);
    return structuredClone(obj);
  }

  /** API Concepts, "Resource versions": a list carries the version it was read at, for the watch that follows. */
  list(def: ResourceDef, filter: WatchFilter): { items: Obj[]; resourceVersion: string } {
    const items = this.all(def, filter.namespace).filter((o) => filter.matches(o));
    items.sort((a, b) => objectKey(a.metadata.namespace, a.metadata.name).localeCompare(objectKey(b.metadata.namespace, b.metadata.name)));
    return { items, resourceVersion: this.resourceVersion };
  }

  create(def: ResourceDef, namespace: string | undefined, body: Obj): Obj {
    if (typeof body !== "object" || body === null || Array.isArray(body)) throw badRequest(`the body of a create must be a ${def.kind} object`);
    if (body.kind !== undefined && body.kind !== def.kind) throw badRequest(`the kind in the data (${body.kind}) does not match the expected kind (${def.kind})`);
    const meta: Obj = { ...(body.metadata ?? {}) };
    if (def.namespaced && meta.namespace !== undefined && meta.namespace !== "" && meta.namespace !== namespace) {
      throw badRequest("the namespace of the provided object does not match the namespace sent on the request");
    }
    // API conventions, "Concurrency Control and Consistency": a create carries no version to compare against.
    if (meta.resourceVersion) throw new ApiError(500, "InternalError", "resourceVersion should not be set on objects to be created");
    if (!meta.name) {
      if (!meta.generateName) throw invalid(def.kind, def, "", "metadata.name", "Required value: name or generateName is required");
      meta.name = `${meta.generateName}${randomSuffix()}`;
    }
    if (!DNS_SUBDOMAIN.test(meta.name) || meta.name.length > 253) {
      throw invalid(def.kind, def, meta.name, "metadata.name", `Invalid value: "${meta.name}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character`);
    }
    const bucket = this.bucket(def);
    const key = objectKey(def.namespaced ? namespace : undefined, meta.name);
    if (bucket.has(key)) throw alreadyExists(def, meta.name);
    // The version is taken only once the object is accepted.
    const rv = this.rv + 1;
    const obj: Obj = {
      ...structuredClone(body),
      apiVersion: def.group ? `${def.group}/${def.version}` : def.version,
      kind: def.kind,
      metadata: {
        ...structuredClone(meta),
        ...(def.namespaced ? { namespace } : {}),
        uid: crypto.randomUUID(),
        resourceVersion: String(rv),
        creationTimestamp: now(),
        ...(def.custom ? { generation: 1 } : {}),
      },
    };
    delete obj.metadata.deletionTimestamp;
    delete obj.metadata.deletionGracePeriodSeconds;
    // CustomResourceDefinitions, "Status subresource": a create cannot set status.
    if (def.statusSubresource) delete obj.status;
    if (def.plural === "secrets" && !def.group) normalizeSecret(obj);
    const stored = conform(def, obj);
    this.rv = rv;
    bucket.set(key, stored);
    this.record(def, "ADDED", structuredClone(stored));
    return structuredClone(stored);
  }

  /**
   * PUT: the whole object, conditional on metadata.resourceVersion when the body carries one.
   * API conventions, "Concurrency Control and Consistency"; CustomResourceDefinitions, "Status subresource".
   */
  update(def: ResourceDef, namespace: string | undefined, name: string, body: Obj, subresource?: "status"): Obj {
    if (typeof body !== "object" || body === null || Array.isArray(body)) throw badRequest(`the body of an update must be a ${def.kind} object`);
    const bucket = this.bucket(def);
    const key = objectKey(def.namespaced ? namespace : undefined, name);
    const existing = bucket.get(key);
    if (!existing) throw notFound(def, name);
    const meta: Obj = body.metadata ?? {};
    if (meta.name !== undefined && meta.name !== name) throw badRequest(`the name of the object (${meta.name}) does not match the name on the URL (${name})`);
    if (meta.resourceVersion !== undefined && meta.resourceVersion !== "" && meta.resourceVersion !== existing.metadata.resourceVersion) throw conflict(def, name);

    let next: Obj;
    if (subresource === "status") {
      // Only status is taken from the body; spec and metadata stay as stored.
      next = { ...structuredClone(existing), status: structuredClone(body.status) };
      if (body.status === undefined) delete next.status;
    } else {
      next = { ...structuredClone(body), apiVersion: existing.apiVersion, kind: existing.kind };
      next.metadata = {
        ...structuredClone(meta),
        name,
        ...(def.namespaced ? { namespace: existing.metadata.namespace } : {}),
        uid: existing.metadata.uid,
        creationTimestamp: existing.metadata.creationTimestamp,
      };
      delete next.metadata.deletionTimestamp;
      delete next.metadata.deletionGracePeriodSeconds;
      for (const k of ["deletionTimestamp", "deletionGracePeriodSeconds", "generation"] as const) {
        if (existing.metadata[k] !== undefined) next.metadata[k] = existing.metadata[k];
      }
      if (def.statusSubresource) {
        if (existing.status === undefined) delete next.status;
        else next.status = structuredClone(existing.status);
      }
      if (def.plural === "secrets" && !def.group) normalizeSecret(next);
      // Finalizers, "How finalizers work": an object on its way out takes no new finalizers.
      if (existing.metadata.deletionTimestamp) {
        const added = (next.metadata.finalizers ?? []).filter((f: string) => !(existing.metadata.finalizers ?? []).includes(f));
        if (added.length) throw invalid(def.kind, def, name, "metadata.finalizers", `Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers ${JSON.stringify(added)}`);
      }
    }
    next = conform(def, next);
    if (def.custom && !Bun.deepEquals(specPart(existing), specPart(next))) next.metadata.generation = (existing.metadata.generation ?? 0) + 1;
    next.metadata.resourceVersion = existing.metadata.resourceVersion;
    // A write that changes nothing is not a change: no new resourceVersion, no event.
    if (sameExceptVersion(existing, next)) return structuredClone(existing);
    this.rv++;
    next.metadata.resourceVersion = String(this.rv);
    if (next.metadata.deletionTimestamp && !(next.metadata.finalizers ?? []).length) {
      bucket.delete(key);
      this.record(def, "DELETED", structuredClone(next));
      return structuredClone(next);
    }
    bucket.set(key, next);
    this.record(def, "MODIFIED", structuredClone(next), structuredClone(existing));
    return structuredClone(next);
  }

  /** PATCH: applied to the stored object, then written as an update (so a patched resourceVersion is a precondition). */
  patch(def: ResourceDef, namespace: string | undefined, name: string, kind: "merge" | "json", patch: unknown, subresource?: "status"): Obj {
    const existing = this.get(def, namespace, name);
    const patched = kind === "merge" ? mergePatch(existing, patch) : jsonPatch(existing, patch);
    if (typeof patched !== "object" || patched === null || Array.isArray(patched)) throw badRequest("the patch does not leave an object");
    return this.update(def, namespace, name, patched as Obj, subresource);
  }

  /**
   * DELETE: immediate without finalizers; with finalizers, only marked with deletionTimestamp
   * until an update removes the last one. Finalizers, "How finalizers work".
   */
  delete(def: ResourceDef, namespace: string | undefined, name: string, preconditions?: { resourceVersion?: string; uid?: string }): { deleted: boolean; object: Obj } {
    const existing = this.bucket(def).get(objectKey(def.namespaced ? namespace : undefined, name));
    if (!existing) throw notFound(def, name);
    if (preconditions?.uid && preconditions.uid !== existing.metadata.uid) {
      throw conflict(def, name, `Precondition failed: UID in precondition: ${preconditions.uid}, UID in object meta: ${existing.metadata.uid}`);
    }
    if (preconditions?.resourceVersion && preconditions.resourceVersion !== existing.metadata.resourceVersion) {
      throw conflict(def, name, `Precondition failed: ResourceVersion in precondition: ${preconditions.resourceVersion}, ResourceVersion in object meta: ${existing.metadata.resourceVersion}`);
    }
    if ((existing.metadata.finalizers ?? []).length) {
      if (existing.metadata.deletionTimestamp) return { deleted: false, object: structuredClone(existing) };
      const before = structuredClone(existing);
      this.rv++;
      existing.metadata.deletionTimestamp = now();
      existing.metadata.deletionGracePeriodSeconds = 0;
      existing.metadata.resourceVersion = String(this.rv);
      this.record(def, "MODIFIED", structuredClone(existing), before);
      return { deleted: false, object: structuredClone(existing) };
    }
    return { deleted: true, object: this.remove(def, existing) };
  }

  private remove(def: ResourceDef, existing: Obj): Obj {
    this.bucket(def).delete(objectKey(existing.metadata.namespace, existing.metadata.name));
    this.rv++;
    const gone = { ...structuredClone(existing), metadata: { ...structuredClone(existing.metadata), resourceVersion: String(this.rv) } };
    this.record(def, "DELETED", gone);
    return structuredClone(gone);
  }

  /**
   * API Concepts, "Efficient detection of changes" and "Semantics for watch": without a
   * version (or with "0") the current objects arrive first as ADDED; with a version, the
   * changes after it, or 410 Expired when history no longer reaches back that far.
   * A MODIFIED object that enters or leaves the selector arrives as ADDED or DELETED.
   */
  watch(def: ResourceDef, filter: WatchFilter, from: string | undefined, send: Listener): () => void {
    const resource = resourceKey(def);
    const inScope = (o: Obj) => filter.namespace === undefined || o.metadata.namespace === filter.namespace;
    const deliver = (c: Change) => {
      if (!inScope(c.object)) return;
      const now = filter.matches(c.object);
      if (c.type !== "MODIFIED") {
        if (now) send(c.type, structuredClone(c.object));
        return;
      }
      const was = c.before ? filter.matches(c.before) : now;
      if (was && now) send("MODIFIED", structuredClone(c.object));
      else if (now) send("ADDED", structuredClone(c.object));
      else if (was) send("DELETED", structuredClone(c.object));
    };
    if (from === undefined || from === "" || from === "0") {
      for (const o of this.list(def, filter).items) send("ADDED", o);
    } else {
      const asked = Number(from);
      if (!/^[0-9]+$/.test(from)) throw badRequest(`invalid resource version "${from}"`);
      if (asked < this.compacted) throw expired(asked, this.compacted + 1);
      for (const c of this.history) if (c.rv > asked && c.resource === resource) deliver(c);
    }
    const entry = { resource, listener: deliver };
    this.listeners.add(entry);
    return () => this.listeners.delete(entry);
  }
}

/** Secrets: stringData is folded into data, and data values must be base64 (Secret v1 reference). */
function normalizeSecret(obj: Obj): void {
  if (obj.stringData && typeof obj.stringData === "object") {
    obj.data = { ...(obj.data ?? {}) };
    for (const [k, v] of Object.entries(obj.stringData)) obj.data[k] = Buffer.from(String(v)).toString("base64");
    delete obj.stringData;
  }
  for (const [k, v] of Object.entries(obj.data ?? {})) {
    if (typeof v !== "string" || !BASE64.test(v)) throw badRequest(`Secret in version "v1" cannot be handled as a Secret: illegal base64 data in data.${k}`);
  }
  if (obj.type === undefined) obj.type = "Opaque";
}
