/**
 * The driver catalogue: which `type:` strings name which driver classes. Built-in
 * drivers register upstream's class paths (so upstream exporter configs run
 * unchanged) and short names; drivers loaded from drivers folders register
 * `<file>.<Class>`.
 */
import { Composite, Proxy } from "./composite.ts";
import type { DriverClass } from "./driver.ts";
import { closest } from "../common/schema.ts";

export interface CatalogEntry {
  /** The name shown by `jmp driver list`. */
  name: string;
  /** Every `type:` string that selects this driver. */
  types: string[];
  driver: DriverClass;
  /** "built-in" or the file it was loaded from. */
  source: string;
}

export class DriverCatalog {
  private readonly byType = new Map<string, CatalogEntry>();
  private readonly all: CatalogEntry[] = [];

  constructor(entries: CatalogEntry[] = []) {
    this.add({
      name: "Composite",
      types: ["Composite", "jumpstarter_driver_composite.driver.Composite"],
      driver: Composite,
      source: "built-in",
    });
    this.add({
      name: "Proxy",
      types: ["Proxy", "jumpstarter_driver_composite.driver.Proxy"],
      driver: Proxy,
      source: "built-in",
    });
    for (const e of entries) this.add(e);
  }

  add(entry: CatalogEntry): void {
    if (!entry.driver.client) {
      throw new TypeError(`driver ${entry.name} (${entry.source}) does not declare its client class (static client = "...")`);
    }
    this.all.push(entry);
    for (const t of entry.types) this.byType.set(t, entry);
  }

  resolve(type: string): CatalogEntry | undefined {
    return this.byType.get(type);
  }

  entries(): readonly CatalogEntry[] {
    return this.all;
  }

  /** The type names nearest to an unknown one, for "did you mean" hints. */
  suggest(type: string): string[] {
    const types = [...this.byType.keys()];
    const near = closest(type, types) ?? closest(type.split(".").pop()!, types.filter((t) => !t.includes(".")));
    return near ? [near] : [];
  }
}
