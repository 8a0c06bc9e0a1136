/**
 * AdminService's ExporterAccessPolicy calls. Policies travel as JSON objects in
 * upstream's shape and are checked here with the same code that checks a file on
 * the admin's machine: the admin API is a boundary, whatever sent the request.
 */
import type { ServiceImpl } from "@connectrpc/connect";
import { type AccessPolicy, parseAccessPolicy, policyDocument } from "../../common/access-policy.ts";
import { SchemaError } from "../../common/schema.ts";
import type { AdminService } from "../../gen/jumpstarter/admin/v1/admin_pb.ts";
import { invalidArgument } from "../errors.ts";
import { adminActor } from "./audit-admin.ts";
import type { ControllerState } from "../state.ts";
import { rpc } from "./errors.ts";

/** More would be a mistake (or an attack), not a lab's policies. */
const MAX_POLICIES = 100;
const MAX_POLICY_BYTES = 256 * 1024;

type PolicyCalls = Pick<ServiceImpl<typeof AdminService>, "applyPolicies" | "listPolicies" | "deletePolicy">;

const ns = (n: string) => n || "default";

function parsePolicies(namespace: string, texts: readonly string[]): AccessPolicy[] {
  if (texts.length === 0) throw invalidArgument("no policy to apply");
  if (texts.length > MAX_POLICIES) throw invalidArgument(`at most ${MAX_POLICIES} policies at once: got ${texts.length}`);
  const seen = new Set<string>();
  return texts.map((text, i) => {
    const at = texts.length > 1 ? `policy ${i + 1}: ` : "";
    if (text.length > MAX_POLICY_BYTES) throw invalidArgument(`${at}larger than ${MAX_POLICY_BYTES} bytes`);
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw invalidArgument(`${at}not JSON`);
    }
    let policy: AccessPolicy;
    try {
      policy = parseAccessPolicy(value, namespace);
    } catch (e) {
      if (e instanceof SchemaError) throw invalidArgument(`${at}${e.message}`);
      throw e;
    }
    if (policy.namespace !== namespace) throw invalidArgument(`${at}metadata.namespace is '${policy.namespace}', but the request is for '${namespace}'`);
    if (seen.has(policy.name)) throw invalidArgument(`${at}policy ${policy.name} appears twice`);
    seen.add(policy.name);
    return policy;
  });
}

export function policyHandlers(state: ControllerState): PolicyCalls {
  return {
    applyPolicies: (req, ctx) => rpc(async () => {
      const policies = parsePolicies(ns(req.namespace), req.policiesJson);
      await state.applyPolicies(ns(req.namespace), policies, adminActor(ctx));
      return { names: policies.map((p) => p.name) };
    }),
    listPolicies: (req) => rpc(() => ({
      policiesJson: state.listPolicies(ns(req.namespace)).map((p) => JSON.stringify(policyDocument(p))),
    })),
    deletePolicy: (req, ctx) => rpc(async () => {
      await state.deletePolicy(ns(req.namespace), req.name, adminActor(ctx));
      return {};
    }),
  };
}
