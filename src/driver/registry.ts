/**
 * From `jumpstarter.dev/client` labels to client classes. Built-in clients register
 * upstream's class paths, so our `j` drives upstream's Python exporters; a label
 * with no class here, or one the allow-list refuses, gets the GenericClient.
 */
import type { ClientInit, DriverClient } from "./client.ts";

export type ClientClass = new (init: ClientInit) => DriverClient;

export class ClientRegistry {
  private readonly classes = new Map<string, { cls: ClientClass; builtin: boolean }>();

  /**
   * Built-in clients are part of jmp itself and always usable; clients from
   * elsewhere (drivers folders) are used only where the allow-list permits.
   */
  register(labels: string[], cls: ClientClass, opts: { builtin?: boolean } = {}): void {
    for (const l of labels) this.classes.set(l, { cls, builtin: opts.builtin ?? true });
  }

  /** The class for a label that this allow-list permits, if any. */
  lookup(label: string, allow: AllowList = DEFAULT_ALLOW): ClientClass | undefined {
    const entry = this.classes.get(label);
    if (!entry) return undefined;
    return entry.builtin || allow.allows(label) ? entry.cls : undefined;
  }

  labels(): string[] {
    return [...this.classes.keys()];
  }
}

/**
 * The allow-list of client classes, as upstream's `drivers.allow` globs
 * (`jumpstarter_driver_*`); `UNSAFE` (or unsafe: true) allows all.
 */
export class AllowList {
  private readonly patterns: RegExp[];
  readonly unsafe: boolean;

  constructor(globs: string[], unsafe = false) {
    this.unsafe = unsafe || globs.includes("UNSAFE");
    this.patterns = globs.filter((g) => g && g !== "UNSAFE").map(globToRegExp);
  }

  /** `JMP_DRIVERS_ALLOW` is a comma-separated list. */
  static fromEnv(value: string | undefined, fallback: AllowList): AllowList {
    if (value === undefined) return fallback;
    return new AllowList(value.split(",").map((s) => s.trim()).filter(Boolean));
  }

  allows(label: string): boolean {
    return this.unsafe || this.patterns.some((p) => p.test(label));
  }
}

/** Upstream's built-in client packages, allowed by default. */
export const DEFAULT_ALLOW = new AllowList(["jumpstarter_driver_*", "jmp.*"]);

function globToRegExp(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
  return new RegExp(`^${body}$`);
}
