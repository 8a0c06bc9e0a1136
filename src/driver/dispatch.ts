/**
 * Finding and running an exported method of a driver tree, with argument checks.
 * Transport-free: the exporter session turns its results and errors into gRPC.
 */
import { driverClassOf, type Driver } from "./driver.ts";
import type { ByteStream } from "./byte-stream.ts";
import { MethodNotFoundError } from "./errors.ts";
import { type ExportKind, exportedMethods } from "./markers.ts";
import { driversByUuid } from "./report.ts";
import { iterateInCall, runInCall } from "./call-context.ts";

const NEVER = new AbortController().signal;

const KIND_WORDS: Record<ExportKind, string> = {
  unary: "a unary call",
  streaming: "a streaming call",
  bytes: "a byte stream",
};

export class Dispatcher {
  readonly drivers: Map<string, Driver>;

  constructor(readonly root: Driver) {
    this.drivers = driversByUuid(root);
  }

  driver(uuid: string): Driver {
    const d = this.drivers.get(uuid);
    if (!d) throw new MethodNotFoundError(`no driver with uuid ${uuid} in this session`);
    return d;
  }

  private method(uuid: string, method: string, kind: ExportKind): { driver: Driver; fn: (...a: unknown[]) => unknown } {
    const driver = this.driver(uuid);
    const m = exportedMethods(driver).get(method);
    const type = driverClassOf(driver).name;
    if (!m) throw new MethodNotFoundError(`method ${method} not found on driver ${type}`);
    if (m.kind !== kind) throw new MethodNotFoundError(`method ${method} of ${type} is ${KIND_WORDS[m.kind]}, not ${KIND_WORDS[kind]}`);
    const fn = (driver as unknown as Record<string, (...a: unknown[]) => unknown>)[m.name]!;
    return { driver, fn };
  }

  async call(uuid: string, method: string, args: unknown[], signal = NEVER): Promise<unknown> {
    const { driver, fn } = this.method(uuid, method, "unary");
    return await runInCall(signal, () => fn.apply(driver, args));
  }

  streamingCall(uuid: string, method: string, args: unknown[], signal = NEVER): AsyncGenerator<unknown> {
    const { driver, fn } = this.method(uuid, method, "streaming");
    return iterateInCall(signal, runInCall(signal, () => fn.apply(driver, args)) as AsyncIterable<unknown>);
  }

  /** `args`: what the stream request asked for besides the method (e.g. a console's `{ take: true }`); most streams take none. */
  async openStream(uuid: string, method: string, signal = NEVER, args: unknown[] = []): Promise<ByteStream> {
    const { driver, fn } = this.method(uuid, method, "bytes");
    return (await runInCall(signal, () => fn.apply(driver, args))) as ByteStream;
  }

  /** Closes every driver once (a ref shares its target), children first. */
  async close(): Promise<Error[]> {
    const errors: Error[] = [];
    const order: Driver[] = [];
    const seen = new Set<Driver>();
    const visit = (d: Driver) => {
      if (seen.has(d)) return;
      seen.add(d);
      for (const c of Object.values(d.children)) visit(c);
      order.push(d);
    };
    visit(this.root);
    for (const d of order) {
      try {
        await d.close();
      } catch (e) {
        errors.push(e as Error);
      }
    }
    return errors;
  }
}
