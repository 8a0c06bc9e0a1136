/**
 * `dist/jmp controller manifests`, as a user runs it: the YAML parses, the options land
 * where they should, its CRDs install into the API server double through the
 * apiextensions API and serve their kinds, and its Role allows what the controller does
 * and nothing more (enforced by the double's RBAC).
 */
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse, parseAllDocuments } from "yaml";
import { freePort, JMP, jmp, ROOT, tempDir } from "../helpers.ts";
import { clientsFor, failure, GROUP, leaseBody, leases, startDouble, VERSION } from "./fixture.ts";
import { startKubeApiServer, type PolicyRule } from "./server.ts";

type Manifest = Record<string, any>;

let output = "";
async function manifests(args: string[] = []): Promise<Manifest[]> {
  const r = await jmp(["controller", "manifests", ...args]);
  output ||= r.stdout;
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  const docs = parseAllDocuments(r.stdout);
  for (const d of docs) expect(d.errors).toEqual([]);
  return docs.map((d) => d.toJS() as Manifest);
}

let docs: Manifest[];
beforeAll(async () => {
  docs = await manifests(["--namespace", "lab", "--image", "registry.example/jmp:1.2", "--advertise", "lab.example.com:8082"]);
});

describe("jmp controller manifests", () => {
  test("prints the namespace, the four CRDs, RBAC, Service and Deployment, in apply order", () => {
    expect(docs.map((d) => `${d.kind}/${d.metadata.name}`)).toEqual([
      "Namespace/lab",
      "CustomResourceDefinition/clients.jumpstarter.dev",
      "CustomResourceDefinition/exporters.jumpstarter.dev",
      "CustomResourceDefinition/leases.jumpstarter.dev",
      "CustomResourceDefinition/exporteraccesspolicies.jumpstarter.dev",
      "ServiceAccount/jumpstarter-controller",
      "Role/jumpstarter-controller",
      "RoleBinding/jumpstarter-controller",
      "Service/jumpstarter-controller",
      "Deployment/jumpstarter-controller",
    ]);
  });

  test("--namespace, --image and --advertise land in every object that names them", () => {
    for (const d of docs.filter((x) => !["Namespace", "CustomResourceDefinition"].includes(x.kind))) expect(`${d.kind} ${d.metadata.namespace}`).toBe(`${d.kind} lab`);
    expect(docs.find((d) => d.kind === "RoleBinding")!.subjects).toEqual([{ kind: "ServiceAccount", name: "jumpstarter-controller", namespace: "lab" }]);
    const deploy = docs.find((d) => d.kind === "Deployment")!;
    expect(deploy.spec.replicas).toBe(2);
    const c = deploy.spec.template.spec.containers[0];
    expect(c.image).toBe("registry.example/jmp:1.2");
    expect(c.args.slice(0, 4)).toEqual(["controller", "run", "--backend", "kubernetes"]);
    expect(c.env.find((e: Manifest) => e.name === "JMP_ADVERTISE").value).toBe("lab.example.com:8082");
    expect(deploy.spec.template.spec.serviceAccountName).toBe("jumpstarter-controller");
  });

  test("without options: namespace jumpstarter, advertised at the Service's in-cluster name", async () => {
    const plain = await manifests();
    expect(plain[0]).toMatchObject({ kind: "Namespace", metadata: { name: "jumpstarter" } });
    const c = plain.find((d) => d.kind === "Deployment")!.spec.template.spec.containers[0];
    expect(c.env.find((e: Manifest) => e.name === "JMP_ADVERTISE").value).toBe("jumpstarter-controller.jumpstarter.svc:8082");
  });

  test("bad options are one line naming the flag, exit 2", async () => {
    for (const [args, line] of [
      [["--namespace", "Lab_1"], "'--namespace' must be a DNS label"],
      [["--advertise", "lab.example.com"], "'--advertise' must be HOST:PORT"],
      [["--image", "a b"], "'--image' must be an image reference without spaces"],
    ] as const) {
      const r = await jmp(["controller", "manifests", ...args]);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe("");
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr).toContain(line);
    }
  });

  test("the kustomization lists every manifest file, and the binary embeds the same files", () => {
    const dir = join(ROOT, "packaging/kubernetes");
    const kustomization = parse(readFileSync(join(dir, "kustomization.yaml"), "utf8")) as { resources: string[] };
    const files = ["namespace.yaml", "rbac.yaml", "service.yaml", "deployment.yaml", ...readdirSync(join(dir, "crds")).map((f) => `crds/${f}`)];
    expect([...kustomization.resources].sort()).toEqual(files.sort());
    expect(docs.filter((d) => d.kind === "CustomResourceDefinition")).toHaveLength(readdirSync(join(dir, "crds")).length);
  });

  test("the CRDs carry upstream's group, version, kinds, status subresource and status fields", () => {
    const crds = docs.filter((d) => d.kind === "CustomResourceDefinition");
    for (const crd of crds) {
      expect(crd.spec.group).toBe(GROUP);
      expect(crd.spec.scope).toBe("Namespaced");
      expect(crd.spec.versions.map((v: Manifest) => [v.name, v.served, v.storage, v.subresources])).toEqual([[VERSION, true, true, { status: {} }]]);
    }
    const statusFields = (plural: string) => Object.keys(crds.find((c) => c.spec.names.plural === plural)!.spec.versions[0].schema.openAPIV3Schema.properties.status.properties ?? {}).sort();
    expect(statusFields("leases")).toEqual(["beginTime", "conditions", "endTime", "ended", "exporterRef", "priority", "spotAccess"]);
    expect(statusFields("exporters")).toEqual(["conditions", "credential", "devices", "endpoint", "exporterStatus", "lastSeen", "leaseRef", "statusMessage"]);
    expect(statusFields("clients")).toEqual(["conditions", "credential", "endpoint", "tokenExpiresAt"]);
    // A rule's fields, as upstream names them: a field missing here is pruned from what admins apply.
    const policy = crds.find((c) => c.spec.names.plural === "exporteraccesspolicies")!.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties;
    expect(Object.keys(policy).sort()).toEqual(["exporterSelector", "policies"]);
    expect(Object.keys(policy.policies.items.properties).sort()).toEqual(["description", "from", "maximumDuration", "priority", "spotAccess"]);
  });
});

describe("the manifests on the API server double", () => {
  let d: Awaited<ReturnType<typeof startDouble>>;
  let role: PolicyRule[];
  beforeAll(async () => {
    role = docs.find((x) => x.kind === "Role")!.rules;
    // A Role bound by a RoleBinding grants inside its namespace only.
    d = await startDouble({ crds: [], users: [{ token: "admin", name: "kubernetes-admin", rules: "*" }, { token: "sa", name: "system:serviceaccount:lab:jumpstarter-controller", rules: role, namespace: "lab" }] });
  });
  afterAll(() => d?.api.close());

  test("the CRDs install through the apiextensions API, report Established, and serve their kinds", async () => {
    const ext = d.kc.makeApiClient(k8s.ApiextensionsV1Api);
    // client-node's typed models (loadAllYaml) carry `default` and `x-kubernetes-*` through its serializer; a plain object would lose them.
    const typed = k8s.loadAllYaml(output) as k8s.KubernetesObject[];
    for (const crd of typed.filter((x) => x.kind === "CustomResourceDefinition")) {
      const created = await ext.createCustomResourceDefinition({ body: crd as k8s.V1CustomResourceDefinition });
      expect(created.status?.conditions?.find((c) => c.type === "Established")?.status).toBe("True");
    }
    for (const plural of ["clients", "exporters", "leases", "exporteraccesspolicies"]) {
      const list = await d.custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: "lab", plural });
      expect(list.items).toEqual([]);
    }
    const lease = await d.custom.createNamespacedCustomObject({ ...leases(), body: leaseBody("first") });
    const status = await d.custom.replaceNamespacedCustomObjectStatus({ ...leases(), name: "first", body: { ...lease, spec: {}, status: { ended: false } } });
    expect(status.spec.clientRef.name).toBe("alice");
    // The schema came through whole: defaults apply, unknown fields are pruned.
    const exporter = await d.custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: "lab", plural: "exporters", body: { apiVersion: `${GROUP}/${VERSION}`, kind: "Exporter", metadata: { name: "e" }, spec: { bogus: 1 } } });
    expect(exporter.spec).toEqual({ enabled: true });
    const stored = await d.kc.makeApiClient(k8s.ApiextensionsV1Api).readCustomResourceDefinition({ name: "leases.jumpstarter.dev" });
    expect(stored.spec.versions[0]!.schema!.openAPIV3Schema!.properties!.spec!.x_kubernetes_validations!.map((v) => v.message)).toContain("tags are immutable after creation");
  });

  test("the Role allows what the controller does", async () => {
    const sa = clientsFor(d.api, "lab", "sa");
    const merge = k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch);
    for (const plural of ["clients", "exporters", "leases"]) {
      const kind = { clients: "Client", exporters: "Exporter", leases: "Lease" }[plural]!;
      const r = { group: GROUP, version: VERSION, namespace: "lab", plural };
      const spec = plural === "leases" ? leaseBody("").spec : {};
      const o = await sa.custom.createNamespacedCustomObject({ ...r, body: { apiVersion: `${GROUP}/${VERSION}`, kind, metadata: { name: `sa-${plural}` }, spec } });
      await sa.custom.patchNamespacedCustomObjectStatus({ ...r, name: o.metadata.name, body: { status: plural === "leases" ? { ended: false } : { conditions: [] } } }, merge);
      await sa.custom.listNamespacedCustomObject(r);
      await sa.custom.deleteNamespacedCustomObject({ ...r, name: o.metadata.name });
    }
    await sa.custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: "lab", plural: "exporteraccesspolicies" });
    const election = await sa.coordination.createNamespacedLease({ namespace: "lab", body: { metadata: { name: "jumpstarter-controller" }, spec: { holderIdentity: "pod-a" } } });
    await sa.coordination.replaceNamespacedLease({ namespace: "lab", name: "jumpstarter-controller", body: { ...election, spec: { holderIdentity: "pod-b" } } });
    await sa.core.createNamespacedSecret({ namespace: "lab", body: { metadata: { name: "jumpstarter-controller-keys" }, stringData: { key: "k" } } });
    expect((await sa.core.readNamespacedSecret({ namespace: "lab", name: "jumpstarter-controller-keys" })).data).toEqual({ key: "aw==" });
  });

  test("...and nothing more: no patching, other Secrets cannot be listed, nothing outside the namespace", async () => {
    const sa = clientsFor(d.api, "lab", "sa");
    const policy = await failure(sa.custom.patchNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: "lab", plural: "exporteraccesspolicies", name: "p", body: { spec: {} } }));
    expect(policy.status.message).toBe('exporteraccesspolicies.jumpstarter.dev "p" is forbidden: User "system:serviceaccount:lab:jumpstarter-controller" cannot patch resource "exporteraccesspolicies" in API group "jumpstarter.dev" in the namespace "lab"');
    expect((await failure(sa.core.listNamespacedSecret({ namespace: "lab" }))).code).toBe(403);
    expect((await failure(sa.core.deleteNamespacedSecret({ namespace: "lab", name: "jumpstarter-controller-keys" }))).code).toBe(403);
    expect((await failure(sa.coordination.deleteNamespacedLease({ namespace: "lab", name: "jumpstarter-controller" }))).code).toBe(403);
    const elsewhere = await failure(sa.custom.listNamespacedCustomObject({ ...leases("other") }));
    expect(elsewhere.status.message).toBe('leases.jumpstarter.dev is forbidden: User "system:serviceaccount:lab:jumpstarter-controller" cannot list resource "leases" in API group "jumpstarter.dev" in the namespace "other"');
    const everywhere = await failure(sa.custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: "leases" }));
    expect(everywhere.status.message).toContain('cannot list resource "leases" in API group "jumpstarter.dev" at the cluster scope');
  });
});

describe("the controller under the manifests' Role", () => {
  test("dist/jmp controller run --backend kubernetes starts and registers an exporter and a client with only the Role's permissions", async () => {
    const sa = "system:serviceaccount:lab:jumpstarter-controller";
    const role = docs.find((x) => x.kind === "Role")!.rules as PolicyRule[];
    const api = await startKubeApiServer({ users: [{ token: "sa", name: sa, rules: role, namespace: "lab" }] });
    const dir = tempDir("jmp-kube-role-");
    let out = "";
    const kubeconfig = `${dir.path}/kubeconfig`;
    const data = `${dir.path}/data`;
    api.writeKubeconfig(kubeconfig, { namespace: "lab" });
    const port = await freePort();
    const proc = Bun.spawn([JMP, "controller", "run", "--backend", "kubernetes", "--kubeconfig", kubeconfig, "--data-dir", data, "--listen", `127.0.0.1:${port}`, "--advertise", `127.0.0.1:${port}`], {
      stdout: "pipe", stderr: "pipe", env: { ...process.env, NO_COLOR: "1" },
    });
    const pump = async (s: ReadableStream<Uint8Array>) => { for await (const c of s) out += new TextDecoder().decode(c); };
    void pump(proc.stdout);
    void pump(proc.stderr);
    try {
      const deadline = Date.now() + 20_000;
      while (!out.includes("listening on") && proc.exitCode === null && Date.now() < deadline) await Bun.sleep(50);
      expect({ listening: out.includes("listening on"), out: out.includes("listening on") ? "" : out }).toEqual({ listening: true, out: "" });
      const admin = ["--namespace", "lab", "--admin-config", `${data}/admin.yaml`];
      for (const args of [["create", "exporter", "pi-1", "-l", "board=rpi4", "--out", `${dir.path}/pi-1.yaml`], ["create", "client", "alice", "--out", `${dir.path}/alice.yaml`]]) {
        const r = await jmp(["admin", ...args, ...admin]);
        expect({ args, code: r.code, stderr: r.stderr }).toEqual({ args, code: 0, stderr: "" });
      }
      const policy = `${dir.path}/policy.yaml`;
      writeFileSync(policy, "apiVersion: jumpstarter.dev/v1alpha1\nkind: ExporterAccessPolicy\nmetadata: { name: rpi }\nspec:\n  policies: [ { description: people, priority: 3, from: [ { clientSelector: {} } ] } ]\n");
      const applied = await jmp(["admin", "policy", "apply", "-f", policy, ...admin]);
      expect({ code: applied.code, stderr: applied.stderr }).toEqual({ code: 0, stderr: "" });
      expect(api.objects("exporteraccesspolicies.jumpstarter.dev", "lab").map((o) => o.spec)).toEqual([
        { exporterSelector: {}, policies: [{ description: "people", priority: 3, from: [{ clientSelector: {} }] }] },
      ]);
      expect(api.objects("exporters.jumpstarter.dev", "lab").map((o) => o.metadata.name)).toEqual(["pi-1"]);
      expect(api.objects("clients.jumpstarter.dev", "lab").map((o) => o.metadata.name)).toEqual(["alice"]);
      const audit = api.audit();
      expect(audit.filter((e) => e.code === 403)).toEqual([]);
      // What it did, so a Role that grows past this shows up in review: its keys Secret, its kinds, their /status.
      const used = new Set(audit.map((e) => `${e.verb} ${e.resource}${e.group ? `.${e.group}` : ""}`));
      for (const u of ["get secrets", "create secrets", "create exporters.jumpstarter.dev", "create clients.jumpstarter.dev"]) expect(used).toContain(u);
    } finally {
      proc.kill("SIGTERM");
      await proc.exited;
      await api.close();
      dir.remove();
    }
  }, 60_000);
});
