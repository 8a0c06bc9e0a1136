/**
 * ExporterAccessPolicy objects to and from the model. An object we cannot read (an
 * admin's kubectl edit with a typo, a field of a newer upstream) must not open the lab:
 * it is read as a policy that takes every exporter and admits nobody, and the log says
 * which object and why, so access fails closed until it is fixed.
 */
import { type AccessPolicy, parseAccessPolicy, POLICY_API_VERSION, POLICY_KIND, policySpecDocument } from "../../../common/access-policy.ts";
import { getLogger } from "../../../common/log.ts";
import type { KubeObject } from "./api.ts";

const log = getLogger("controller");

export function policyFromObject(obj: KubeObject): AccessPolicy {
  const namespace = obj.metadata.namespace ?? "default";
  try {
    return parseAccessPolicy({ apiVersion: POLICY_API_VERSION, kind: POLICY_KIND, metadata: { name: obj.metadata.name }, spec: obj.spec ?? {} }, namespace);
  } catch (e) {
    log.error(`exporteraccesspolicy ${namespace}/${obj.metadata.name} cannot be read (${(e as Error).message}): it admits nobody until it is fixed`);
    return { namespace, name: obj.metadata.name, exporterSelector: { requirements: [] }, policies: [] };
  }
}

/** The object with the policy's spec; what else `from` carries (labels, annotations, status) stays. */
export function policyToObject(p: AccessPolicy, from?: KubeObject): KubeObject {
  return {
    ...from,
    apiVersion: POLICY_API_VERSION,
    kind: POLICY_KIND,
    metadata: { ...from?.metadata, name: p.name, namespace: p.namespace },
    spec: policySpecDocument(p),
  };
}
