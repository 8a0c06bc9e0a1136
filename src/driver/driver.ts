/**
 * The driver base class. A driver is a class with exported methods (see markers.ts)
 * and a declared config shape; the exporter builds a fresh tree of drivers from the
 * `export:` section of its config for every lease.
 */
import { getLogger, Logger, type LogLevel } from "../common/log.ts";
import { parseShape, type Infer, type Shape } from "../common/schema.ts";
import { InvalidArgumentError } from "./errors.ts";
import type { ByteStream } from "./byte-stream.ts";
import { openResource, type ResourceTable } from "./resource.ts";

/** What a driver's log lines carry besides the text. */
export interface DriverLogRecord {
  level: LogLevel;
  message: string;
  driverType: string;
  operation?: string;
  fields?: Record<string, string>;
}

export type DriverLogSink = (record: DriverLogRecord) => void;

export interface DriverClass<D extends Driver = Driver> {
  new (config: any): D;
  /** The client class path reported as `jumpstarter.dev/client`. */
  readonly client: string;
  /** The keys accepted under `config:`. */
  readonly configShape: Shape;
  /** A category for logs: power, serial, network, storage, composite, … */
  readonly driverType: string;
  /** One line for `jmp driver list`. */
  readonly summary?: string;
  /** Help for exported methods by wire name, reported as `methods_description`. */
  readonly help?: Record<string, string>;
}

export abstract class Driver<C = Record<string, unknown>> {
  /** The client class path reported as `jumpstarter.dev/client`; every driver sets it. */
  static readonly client: string = "";
  static readonly configShape: Shape = {};
  static readonly driverType: string = "other";
  static readonly summary?: string;
  static readonly help?: Record<string, string>;

  /** Random per instance, and instances are rebuilt per lease, as upstream. */
  readonly uuid: string = crypto.randomUUID();
  children: Record<string, Driver> = {};
  description?: string;
  methodsDescription: Record<string, string> = {};
  labels: Record<string, string> = {};
  /** Client-stream resources opened by this driver's clients, by uuid. */
  readonly resources: ResourceTable = new Map();
  log: Logger;
  /** Records below this level do not reach clients (config `log_level`, as upstream). */
  logLevel: LogLevel = "info";
  readonly config: C;

  constructor(config: C) {
    this.config = config;
    this.log = getLogger(`driver.${this.constructor.name}`);
  }

  /** Builds a driver from a raw config map, checking it against `configShape`. */
  static create<D extends Driver>(this: DriverClass<D>, config: Record<string, unknown> = {}): D {
    return new this(parseShape(this.configShape, config));
  }

  /** Labels beyond the ones every driver reports. */
  extraLabels(): Record<string, string> {
    return {};
  }

  /**
   * Releases what the driver holds (processes, files, sockets). Called once per
   * driver at the end of a session, children before parents; do not close children.
   */
  async close(): Promise<void> {}

  /**
   * Opens a resource handle received as a call argument: a client-side file
   * streamed to us (`client_stream`), or a URL we fetch ourselves (`presigned_request`).
   */
  resource(handle: unknown): Promise<ByteStream> {
    return openResource(this.resources, handle);
  }

  protected requireArg<T>(value: T | undefined | null, name: string): T {
    if (value === undefined || value === null) throw new InvalidArgumentError(`missing argument '${name}'`);
    return value;
  }
}

/** The shape helpers, typed: `class X extends Driver<ConfigOf<typeof shape>>`. */
export type ConfigOf<S extends Shape> = Infer<S>;

export function driverClassOf(d: Driver): DriverClass {
  return d.constructor as unknown as DriverClass;
}
