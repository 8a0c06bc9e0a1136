/**
 * Builds the client tree from a GetReport answer, as upstream: children before
 * parents, each child under its `jumpstarter.dev/name`, the root last.
 */
import type { WireReport } from "../common/exporter-wire.ts";
import type { DriverClient, Portal } from "./client.ts";
import { GenericClient } from "./generic-client.ts";
import { CLIENT_LABEL, NAME_LABEL } from "./labels.ts";
import { type AllowList, type ClientRegistry, DEFAULT_ALLOW } from "./registry.ts";

export interface TreeOptions {
  registry: ClientRegistry;
  allow?: AllowList;
}

/** `reports`: protobuf-es's DriverInstanceReports (the Connect path), or exporter-wire.ts's (j's). */
export function buildClientTree(reports: WireReport[], portal: Portal, opts: TreeOptions): DriverClient {
  if (reports.length === 0) throw new Error("the exporter reported no drivers");
  const allow = opts.allow ?? DEFAULT_ALLOW;
  // A ref reports the same uuid twice; parents are resolved to the last report seen
  // with that uuid before the child, as upstream does.
  const lastSeen = new Map<string, number>();
  const childrenOf = new Map<number, number[]>();
  reports.forEach((r, i) => {
    childrenOf.set(i, []);
    if (r.parentUuid) {
      const parent = lastSeen.get(r.parentUuid);
      if (parent === undefined) throw new Error(`report ${r.uuid} names an unknown parent ${r.parentUuid}`);
      childrenOf.get(parent)!.push(i);
    }
    lastSeen.set(r.uuid, i);
  });
  const built = new Map<number, DriverClient>();
  const build = (i: number): DriverClient => {
    const done = built.get(i);
    if (done) return done;
    const r = reports[i]!;
    const children: Record<string, DriverClient> = {};
    for (const c of childrenOf.get(i)!) children[reports[c]!.labels[NAME_LABEL] ?? `driver${c}`] = build(c);
    const label = r.labels[CLIENT_LABEL] ?? "";
    const cls = opts.registry.lookup(label, allow) ?? GenericClient;
    const client = new cls({
      uuid: r.uuid,
      labels: r.labels,
      portal,
      children,
      description: r.description,
      methodsDescription: r.methodsDescription,
    });
    built.set(i, client);
    return client;
  };
  const roots = reports.map((r, i) => [r, i] as const).filter(([r]) => !r.parentUuid);
  if (roots.length !== 1) throw new Error(`the exporter reported ${roots.length} root drivers, expected one`);
  return build(roots[0]![1]);
}
