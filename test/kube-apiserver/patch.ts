/**
 * The two patch formats custom resources accept. API conventions, "PATCH operations":
 * JSON Patch (RFC 6902, application/json-patch+json) and JSON Merge Patch (RFC 7386,
 * application/merge-patch+json). Strategic merge patch is refused for custom resources
 * by the caller, as the real server refuses it.
 */
import { ApiError } from "./status.ts";

type Json = unknown;

const isObject = (v: Json): v is Record<string, Json> => typeof v === "object" && v !== null && !Array.isArray(v);

/** RFC 7386: objects merge key by key, null deletes, anything else (arrays too) replaces. */
export function mergePatch(target: Json, patch: Json): Json {
  if (!isObject(patch)) return structuredClone(patch);
  const out: Record<string, Json> = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

const unprocessable = (message: string) => new ApiError(422, "Invalid", message);

function tokens(pointer: string): string[] {
  if (pointer === "") return [];
  if (!pointer.startsWith("/")) throw unprocessable(`json patch path "${pointer}" does not start with '/'`);
  return pointer.slice(1).split("/").map((t) => t.replace(/~1/g, "/").replace(/~0/g, "~"));
}

function parentOf(doc: Json, pointer: string): { parent: Record<string, Json> | Json[]; key: string } {
  const path = tokens(pointer);
  if (path.length === 0) throw unprocessable("json patch cannot operate on the whole document");
  let cur: Json = doc;
  for (const t of path.slice(0, -1)) {
    if (Array.isArray(cur)) cur = cur[Number(t)];
    else if (isObject(cur)) cur = cur[t];
    else cur = undefined;
    if (cur === undefined) throw unprocessable(`json patch path "${pointer}": "${t}" does not exist`);
  }
  if (!Array.isArray(cur) && !isObject(cur)) throw unprocessable(`json patch path "${pointer}" is not inside an object or array`);
  return { parent: cur, key: path.at(-1)! };
}

function index(arr: Json[], key: string, pointer: string, forAdd: boolean): number {
  if (forAdd && key === "-") return arr.length;
  const i = Number(key);
  if (!/^(0|[1-9][0-9]*)$/.test(key) || i > arr.length || (!forAdd && i === arr.length)) {
    throw unprocessable(`json patch path "${pointer}": index ${key} is out of range`);
  }
  return i;
}

function get(doc: Json, pointer: string): Json {
  let cur = doc;
  for (const t of tokens(pointer)) {
    cur = Array.isArray(cur) ? cur[Number(t)] : isObject(cur) ? cur[t] : undefined;
    if (cur === undefined) throw unprocessable(`json patch path "${pointer}" does not exist`);
  }
  return cur;
}

function remove(doc: Json, pointer: string): Json {
  const { parent, key } = parentOf(doc, pointer);
  if (Array.isArray(parent)) return parent.splice(index(parent, key, pointer, false), 1)[0];
  if (!(key in parent)) throw unprocessable(`json patch path "${pointer}" does not exist`);
  const old = parent[key];
  delete parent[key];
  return old;
}

function add(doc: Json, pointer: string, value: Json): void {
  const { parent, key } = parentOf(doc, pointer);
  if (Array.isArray(parent)) parent.splice(index(parent, key, pointer, true), 0, structuredClone(value));
  else parent[key] = structuredClone(value);
}

interface Operation {
  op: string;
  path: string;
  from?: string;
  value?: Json;
}

/** RFC 6902, all operations applied to a copy, atomically: one failing operation changes nothing. */
export function jsonPatch(target: Json, ops: Json): Json {
  if (!Array.isArray(ops)) throw new ApiError(400, "BadRequest", "json patch must be a JSON array of operations");
  const doc = structuredClone(target);
  for (const raw of ops as Operation[]) {
    if (!isObject(raw) || typeof raw.op !== "string" || typeof raw.path !== "string") {
      throw new ApiError(400, "BadRequest", `json patch operation ${JSON.stringify(raw)} needs 'op' and 'path'`);
    }
    switch (raw.op) {
      case "add":
        add(doc, raw.path, raw.value);
        break;
      case "remove":
        remove(doc, raw.path);
        break;
      case "replace":
        remove(doc, raw.path);
        add(doc, raw.path, raw.value);
        break;
      case "move":
        add(doc, raw.path, remove(doc, raw.from ?? ""));
        break;
      case "copy":
        add(doc, raw.path, get(doc, raw.from ?? ""));
        break;
      case "test":
        if (!Bun.deepEquals(get(doc, raw.path), raw.value, true)) throw unprocessable(`testing value ${raw.path} failed`);
        break;
      default:
        throw new ApiError(400, "BadRequest", `json patch operation '${raw.op}' is not one of add, remove, replace, move, copy, test`);
    }
  }
  return doc;
}
