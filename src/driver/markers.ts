/**
 * Export markers: only marked methods can be called over the wire, as upstream's
 * `@export` / `@exportstream`. Works as a standard (TC39) decorator, as a legacy
 * TypeScript decorator, and as a plain call (`exported(fn)`) for code without decorators.
 */
export type ExportKind = "unary" | "streaming" | "bytes";

const EXPORT_KIND = Symbol.for("jumpstarter.dev/export-kind");

type AnyFunction = (...args: any[]) => any;

function isAsyncGeneratorFunction(fn: AnyFunction): boolean {
  const name = Object.getPrototypeOf(fn)?.constructor?.name;
  return name === "AsyncGeneratorFunction" || name === "GeneratorFunction";
}

function mark(kind: ExportKind | "auto", args: unknown[]): any {
  const [first, , descriptor] = args;
  const fn = (
    typeof first === "function" ? first : (descriptor as PropertyDescriptor | undefined)?.value
  ) as AnyFunction | undefined;
  if (typeof fn !== "function") throw new TypeError("export markers apply to methods only");
  (fn as any)[EXPORT_KIND] = kind === "auto" ? (isAsyncGeneratorFunction(fn) ? "streaming" : "unary") : kind;
  return descriptor ?? fn;
}

/**
 * Marks a method as callable by clients: a plain (async) method becomes a unary
 * `DriverCall`, an async generator a `StreamingDriverCall`.
 * @example
 * class Lamp extends Driver { @exported async on() { ... } }
 */
export function exported<T extends AnyFunction>(fn: T, context?: unknown): T;
export function exported(...args: unknown[]): any {
  return mark("auto", args);
}

/**
 * Marks a method that opens a byte stream (`RouterService.Stream`): it returns a
 * {@link ByteStream} such as a serial port or a TCP connection.
 */
export function exportStream<T extends AnyFunction>(fn: T, context?: unknown): T;
export function exportStream(...args: unknown[]): any {
  return mark("bytes", args);
}

/** Method names on the wire are snake_case, as upstream's Python drivers: `setDtr` → `set_dtr`. */
export function wireName(jsName: string): string {
  return jsName.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toLowerCase();
}

export interface ExportedMethod {
  /** The JavaScript method name. */
  name: string;
  kind: ExportKind;
}

const cache = new WeakMap<object, Map<string, ExportedMethod>>();

/**
 * All exported methods of an object, keyed by wire name. A method marked anywhere in
 * the prototype chain stays exported when a subclass overrides it, so an interface
 * class can declare the exported contract once and implementations just override.
 */
export function exportedMethods(obj: object): Map<string, ExportedMethod> {
  const proto = Object.getPrototypeOf(obj) as object;
  const cached = cache.get(proto);
  if (cached) return cached;
  const found = new Map<string, ExportedMethod>();
  for (let p: any = proto; p && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
    for (const name of Object.getOwnPropertyNames(p)) {
      if (name === "constructor") continue;
      const desc = Object.getOwnPropertyDescriptor(p, name);
      const kind = typeof desc?.value === "function" ? (desc.value as any)[EXPORT_KIND] : undefined;
      const wire = wireName(name);
      if (kind && !found.has(wire)) found.set(wire, { name, kind });
    }
  }
  cache.set(proto, found);
  return found;
}
