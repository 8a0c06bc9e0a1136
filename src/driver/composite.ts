/**
 * Structural drivers the runtime itself needs: `Composite` groups children (the root
 * of every exporter is one) and `Proxy` makes a `ref:` entry another name for an
 * existing driver, as upstream.
 */
import { Driver } from "./driver.ts";
import { string } from "../common/schema.ts";

export const COMPOSITE_CLIENT = "jumpstarter_driver_composite.client.CompositeClient";

export class Composite extends Driver {
  static override readonly client = COMPOSITE_CLIENT;
  static override readonly driverType = "composite";
  static override readonly summary = "groups child drivers under one name";
}

/**
 * Stands for the driver at a dotted path from the root (`ref: power` or
 * `ref: board.power`). The builder replaces it with its target, so a proxy reports
 * the target's uuid under its own name, exactly as upstream.
 */
export class Proxy extends Driver<{ ref: string }> {
  static override readonly client = COMPOSITE_CLIENT;
  static override readonly configShape = { ref: string({ nonEmpty: true, description: "dotted path of the target" }) };
  static override readonly driverType = "composite";
  static override readonly summary = "another name for an existing driver (ref:)";
}
