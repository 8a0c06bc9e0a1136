/**
 * `jmp controller manifests`: the Kubernetes deployment in packaging/kubernetes/ (CRDs,
 * RBAC, Service, a two-replica Deployment), embedded in the executable and printed as one
 * YAML stream for `kubectl apply -f -`. `--namespace`, `--image` and `--advertise` rewrite
 * the few fields that depend on them; comments in the files are kept.
 */
import { defineCommand } from "../common/command.ts";
import namespaceYaml from "../../packaging/kubernetes/namespace.yaml" with { type: "text" };
import clientsCrd from "../../packaging/kubernetes/crds/jumpstarter.dev_clients.yaml" with { type: "text" };
import exportersCrd from "../../packaging/kubernetes/crds/jumpstarter.dev_exporters.yaml" with { type: "text" };
import leasesCrd from "../../packaging/kubernetes/crds/jumpstarter.dev_leases.yaml" with { type: "text" };
import policiesCrd from "../../packaging/kubernetes/crds/jumpstarter.dev_exporteraccesspolicies.yaml" with { type: "text" };
import rbacYaml from "../../packaging/kubernetes/rbac.yaml" with { type: "text" };
import serviceYaml from "../../packaging/kubernetes/service.yaml" with { type: "text" };
import deploymentYaml from "../../packaging/kubernetes/deployment.yaml" with { type: "text" };
import { UserError } from "../common/errors.ts";
import { stdout } from "../common/stdout.ts";
import { parseEndpoint } from "../common/tls.ts";

/** In the order `kubectl apply` needs them: the namespace and CRDs before what uses them. */
export const MANIFEST_FILES: { name: string; text: string }[] = [
  { name: "namespace.yaml", text: namespaceYaml },
  { name: "crds/jumpstarter.dev_clients.yaml", text: clientsCrd },
  { name: "crds/jumpstarter.dev_exporters.yaml", text: exportersCrd },
  { name: "crds/jumpstarter.dev_leases.yaml", text: leasesCrd },
  { name: "crds/jumpstarter.dev_exporteraccesspolicies.yaml", text: policiesCrd },
  { name: "rbac.yaml", text: rbacYaml },
  { name: "service.yaml", text: serviceYaml },
  { name: "deployment.yaml", text: deploymentYaml },
];

const DEFAULT_NAMESPACE = "jumpstarter";
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export interface ManifestOptions {
  namespace?: string;
  image?: string;
  advertise?: string;
}

function validAdvertise(value: string): boolean {
  if (/\s/.test(value) || !/:\d+$/.test(value)) return false;
  try {
    parseEndpoint(value);
    return true;
  } catch {
    return false;
  }
}

/** The manifests as one YAML stream, with the options applied. */
export async function renderManifests(opts: ManifestOptions = {}): Promise<string> {
  const namespace = opts.namespace ?? DEFAULT_NAMESPACE;
  if (!DNS_LABEL.test(namespace)) throw new UserError(`'--namespace' must be a DNS label (lower-case letters, digits and '-', at most 63): got '${namespace}'`, 2);
  if (opts.image !== undefined && !/^[^\s]+$/.test(opts.image)) throw new UserError(`'--image' must be an image reference without spaces: got '${opts.image}'`, 2);
  if (opts.advertise !== undefined && !validAdvertise(opts.advertise)) throw new UserError(`'--advertise' must be HOST:PORT with a port from 1 to 65535: got '${opts.advertise}'`, 2);
  const { parseAllDocuments } = await import("yaml");
  const out: string[] = [];
  for (const file of MANIFEST_FILES) {
    for (const doc of parseAllDocuments(file.text)) {
      if (doc.errors.length) throw new Error(`packaging/kubernetes/${file.name} does not parse: ${doc.errors[0]!.message}`);
      const kind = doc.get("kind");
      if (kind === "Namespace") doc.setIn(["metadata", "name"], namespace);
      else if (doc.hasIn(["metadata", "namespace"])) doc.setIn(["metadata", "namespace"], namespace);
      if (kind === "RoleBinding") {
        const subjects = doc.getIn(["subjects"]) as { items: unknown[] } | undefined;
        subjects?.items.forEach((_, i) => doc.setIn(["subjects", i, "namespace"], namespace));
      }
      if (kind === "Deployment") {
        if (opts.image) doc.setIn(["spec", "template", "spec", "containers", 0, "image"], opts.image);
        const env = doc.getIn(["spec", "template", "spec", "containers", 0, "env"]) as { items: { get(k: string): unknown }[] };
        const i = env.items.findIndex((e) => e.get("name") === "JMP_ADVERTISE");
        // Without --advertise the controller is reached at its Service's in-cluster name.
        const advertise = opts.advertise ?? `jumpstarter-controller.${namespace}.svc:8082`;
        doc.setIn(["spec", "template", "spec", "containers", 0, "env", i, "value"], advertise);
      }
      out.push(doc.toString().trimEnd());
    }
  }
  return out.map((d) => (d.startsWith("---") ? d : `---\n${d}`)).join("\n") + "\n";
}

export default defineCommand({
  meta: { name: "manifests", description: "Print the Kubernetes deployment (CRDs, RBAC, Deployment) as YAML" },
  args: {
    namespace: { type: "string", description: "the namespace to deploy into", default: DEFAULT_NAMESPACE, valueHint: "NS" },
    image: { type: "string", description: "the container image holding jmp (default: jmp:latest)", valueHint: "IMAGE" },
    advertise: { type: "string", description: "the HOST:PORT exporters and clients dial (default: the Service's in-cluster name)", valueHint: "HOST:PORT" },
  },
  async run({ args }) {
    stdout().write(await renderManifests({ namespace: args.namespace, image: args.image, advertise: args.advertise }));
  },
});
