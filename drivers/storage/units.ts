/** Sizes as people write them in configs (`8G`, `512MiB`) and as logs show them. */
import { config, formatBytes } from "@jumpstarter/driver";

const MULTIPLIERS: Record<string, number> = { "": 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 };

/**
 * A size in bytes: a whole number, or one with a binary unit as qemu-img takes it
 * (`512K`, `4M`, `8G`, also `8GiB`/`8GB`, all powers of 1024). Undefined if malformed.
 */
export function parseSize(value: unknown): number | undefined {
  if (typeof value === "number") return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  if (typeof value !== "string") return undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$/i.exec(value);
  if (!m) return undefined;
  const bytes = Number(m[1]) * MULTIPLIERS[m[2]!.toLowerCase()]!;
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

/** A config field for a size in bytes, from `min` up. */
export function sizeField(opts: { min: number; max?: number; description?: string }): config.Field<number> {
  const range = opts.max === undefined ? `of at least ${formatBytes(opts.min)}` : `from ${formatBytes(opts.min)} to ${formatBytes(opts.max)}`;
  const expected = `a size in bytes ${range} (a number, or with a unit: 512K, 4M, 8G)`;
  return {
    expected,
    optional: false,
    description: opts.description,
    parse(value, keyPath) {
      const bytes = parseSize(value);
      if (bytes === undefined || bytes < opts.min || (opts.max !== undefined && bytes > opts.max)) {
        throw new config.SchemaError(keyPath, `expected ${expected}, got ${JSON.stringify(value)}`);
      }
      return bytes;
    },
  };
}

// The runtime's own formatting, so a driver's log lines read like the client's progress summary.
export { formatBytes, formatTransfer } from "@jumpstarter/driver";
