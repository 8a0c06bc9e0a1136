/** Where the Kubernetes store connects: the kubeconfig and namespace rules of `jmp controller run --backend kubernetes`. */
import { afterAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "./api.ts";

const dir = mkdtempSync(join(tmpdir(), "jmp-kubeconfig-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const kubeconfig = (name: string, namespace?: string) => {
  const file = join(dir, name);
  writeFileSync(file, `apiVersion: v1
kind: Config
clusters: [{ name: c, cluster: { server: "https://127.0.0.1:6443" } }]
users: [{ name: u, user: { token: t } }]
contexts: [{ name: x, context: { cluster: c, user: u${namespace ? `, namespace: ${namespace}` : ""} } }]
current-context: x
`);
  return file;
};

test("--kubeconfig, else $KUBECONFIG, else ~/.kube/config; the namespace: --namespace, else the context's, else default", () => {
  const a = kubeconfig("a", "lab");
  const b = kubeconfig("b");
  expect(connect({ kubeconfig: a, env: {} })).toMatchObject({ namespace: "lab", source: a });
  expect(connect({ kubeconfig: a, namespace: "other", env: {} }).namespace).toBe("other");
  expect(connect({ env: { KUBECONFIG: `${b}:${a}` } })).toMatchObject({ namespace: "default", source: b });
  const home = join(dir, "home");
  const kube = join(home, ".kube");
  mkdirSync(kube, { recursive: true });
  writeFileSync(join(kube, "config"), readFileSync(a, "utf8"));
  expect(connect({ env: { HOME: home } })).toMatchObject({ namespace: "lab", source: join(kube, "config") });
});

test("a kubeconfig that is missing, or names no cluster, is said so with its path", () => {
  expect(() => connect({ kubeconfig: join(dir, "nope"), env: {} })).toThrow(`the kubeconfig ${join(dir, "nope")} does not exist`);
  const empty = join(dir, "empty");
  writeFileSync(empty, "apiVersion: v1\nkind: Config\n");
  expect(() => connect({ kubeconfig: empty, env: {} })).toThrow(`the kubeconfig ${empty} names no current cluster (current-context)`);
});
