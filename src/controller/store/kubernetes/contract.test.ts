/**
 * The Store contract (../contract.ts) on the Kubernetes store: two stores, as two
 * controller replicas, on the API server double (test/kube-apiserver), reached through a
 * real kubeconfig by the real client.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type KubeApiServer, startKubeApiServer } from "../../../../test/kube-apiserver/server.ts";
import { storeContract } from "../contract.ts";
import { connect, KubeApi } from "./api.ts";
import { KubernetesStore } from "./store.ts";

let dir = "";
let api: KubeApiServer | undefined;
let stores: KubernetesStore[] = [];

storeContract("Kubernetes", {
  async open(ns) {
    dir = mkdtempSync(join(tmpdir(), "jmp-kube-contract-"));
    api = await startKubeApiServer();
    const kubeconfig = join(dir, "kubeconfig");
    api.writeKubeconfig(kubeconfig, { namespace: ns });
    stores = [
      await KubernetesStore.open(new KubeApi(connect({ kubeconfig }))),
      await KubernetesStore.open(new KubeApi(connect({ kubeconfig }))),
    ];
    return { store: stores[0]!, peer: stores[1]! };
  },
  async close() {
    for (const s of stores) s.close();
    await api?.close();
    rmSync(dir, { recursive: true, force: true });
  },
});
