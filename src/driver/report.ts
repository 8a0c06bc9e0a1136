/**
 * The GetReport tree: the root first, then each child depth-first in `export:`
 * order, with upstream's labels (`jumpstarter.dev/client`, `jumpstarter.dev/name`).
 */
import { create } from "@bufbuild/protobuf";
import { type DriverInstanceReport, DriverInstanceReportSchema } from "../gen/jumpstarter/v1/jumpstarter_pb.ts";
import { driverClassOf, type Driver } from "./driver.ts";
import { CLIENT_LABEL, METHODS_LABEL, NAME_LABEL } from "./labels.ts";
import { exportedMethods } from "./markers.ts";

export { CLIENT_LABEL, METHODS_LABEL, NAME_LABEL };

export function reportTree(root: Driver): DriverInstanceReport[] {
  const out: DriverInstanceReport[] = [];
  const walk = (d: Driver, parent: Driver | undefined, name: string | undefined, path: Set<Driver>) => {
    if (path.has(d)) return; // a ref back up the tree; build.ts forbids it, this guards serve()
    out.push(report(d, parent, name));
    path.add(d);
    for (const [childName, child] of Object.entries(d.children)) walk(child, d, childName, path);
    path.delete(d);
  };
  walk(root, undefined, undefined, new Set());
  return out;
}

function report(d: Driver, parent: Driver | undefined, name: string | undefined): DriverInstanceReport {
  const labels: Record<string, string> = { ...d.labels, ...d.extraLabels(), [CLIENT_LABEL]: driverClassOf(d).client };
  const methods = [...exportedMethods(d)].map(([wire, m]) => (m.kind === "unary" ? wire : `${wire}:${m.kind}`));
  if (methods.length) labels[METHODS_LABEL] = methods.join(",");
  if (name !== undefined) labels[NAME_LABEL] = name;
  return create(DriverInstanceReportSchema, {
    uuid: d.uuid,
    parentUuid: parent?.uuid,
    labels,
    description: d.description || undefined,
    methodsDescription: methodsDescription(d),
  });
}

/** Configured descriptions win over the driver's own `help` for its methods. */
function methodsDescription(d: Driver): Record<string, string> {
  const own = driverClassOf(d).help ?? {};
  const out: Record<string, string> = {};
  for (const wire of exportedMethods(d).keys()) if (own[wire]) out[wire] = own[wire];
  return { ...out, ...d.methodsDescription };
}

/** Every distinct driver of a tree by uuid (a ref appears once). */
export function driversByUuid(root: Driver): Map<string, Driver> {
  const map = new Map<string, Driver>();
  const stack = [root];
  while (stack.length) {
    const d = stack.pop()!;
    if (map.has(d.uuid)) continue;
    map.set(d.uuid, d);
    stack.push(...Object.values(d.children));
  }
  return map;
}
