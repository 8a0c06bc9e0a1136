/**
 * An exporter session: one driver tree served as ExporterService + RouterService.
 * Local mode serves it on a Unix socket; direct mode on TCP; the distributed agent
 * pipes router streams into it. Status gates driver calls as upstream.
 */
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ConnectRouter, type HandlerContext } from "@connectrpc/connect";
import { LOG_LEVELS, Logger, stderrSink, type LogLevel, type LogRecord } from "../common/log.ts";
import { ExporterStatus, LogSource } from "../gen/jumpstarter/v1/common_pb.ts";
import {
  type DriverCallRequest, DriverCallRequestSchema, type DriverCallResponse, DriverCallResponseSchema,
  ExporterService, type LogStreamResponse, LogStreamResponseSchema, type StreamingDriverCallRequest,
} from "../gen/jumpstarter/v1/jumpstarter_pb.ts";
import { Dispatcher } from "../driver/dispatch.ts";
import { driverClassOf, type Driver } from "../driver/driver.ts";
import { toConnectError } from "../driver/connect-errors.ts";
import { reportTree } from "../driver/report.ts";
import { ACCEPTED_ENCODINGS, TRANSIT_ENCODING } from "../driver/resource.ts";
import { memoryPipe, type ByteStream } from "../driver/byte-stream.ts";
import { openLocalFile } from "./local-file.ts";
import { packTransit, undoTransit } from "./transit.ts";
import { openLocalTarget } from "./local-target.ts";
import { fromValue, toValue } from "../driver/value.ts";
import { MAX_REQUEST_BYTES, type RawHandler } from "../common/http2-server.ts";
import { isGrpc, serveUnary } from "../common/grpc-unary.ts";
import { driverCallObserver } from "./metrics.ts";
import { noteWork } from "../common/idle-gc.ts";
import { ROUTER_STREAM_PATH } from "../common/router-frames.ts";
import { serveByteStream } from "./session-stream.ts";

/**
 * Who a set of routes serves. A client's driver calls run only once the session is
 * LEASE_READY: a lease is usable after its beforeLease hook has succeeded, and not
 * while its afterLease hook cleans up. The hooks' own `j` (on a socket of their
 * own) may also call while they run, as upstream allows.
 */
export type Audience = "client" | "hook";
const CALLABLE: Record<Audience, ReadonlySet<ExporterStatus>> = {
  client: new Set([ExporterStatus.LEASE_READY]),
  hook: new Set([ExporterStatus.LEASE_READY, ExporterStatus.BEFORE_LEASE_HOOK, ExporterStatus.AFTER_LEASE_HOOK]),
};
const RUNNING_HOOK: Partial<Record<ExporterStatus, string>> = {
  [ExporterStatus.BEFORE_LEASE_HOOK]: "beforeLease",
  [ExporterStatus.AFTER_LEASE_HOOK]: "afterLease",
};

const DRIVER_CALL_PATH = `/${ExporterService.typeName}/${ExporterService.method.driverCall.name}`;

const SEVERITY: Record<LogLevel, string> = { debug: "DEBUG", info: "INFO", warn: "WARNING", error: "ERROR" };
const LOG_BACKLOG = 256;
/** Bytes of a resource the session takes in ahead of the driver: the driver reads in blocks, so a frame at a time made HTTP/2 stop and start. */
const RESOURCE_BUFFER = 4 * 2 ** 20;

/** What a failed stream's log line names: the method, or the kind of request. */
function describeStream(raw: string | undefined): string {
  try {
    const r = JSON.parse(raw ?? "") as { method?: unknown; kind?: unknown };
    return String(r.method ?? r.kind ?? "stream");
  } catch {
    return "stream";
  }
}

export interface SessionOptions {
  root: Driver;
  labels?: Record<string, string>;
  motd?: string;
  status?: ExporterStatus;
  /** Also print driver logs here (local mode shows them only at debug level). */
  echoLogs?: boolean;
  /**
   * Clients may hand over a file of this machine by its path instead of streaming
   * it (`x_jmp_local_file` in a resource request): only for a session that no one
   * but this user can reach (local mode's private socket), whose clients can read
   * those files themselves anyway. Never for one reached over a network, where a
   * path would name the exporter's files, not the client's.
   */
  localFiles?: boolean;
}

export class ExporterSession {
  readonly uuid = crypto.randomUUID();
  readonly dispatcher: Dispatcher;
  readonly labels: Record<string, string>;
  /** The configured MOTD, and what a beforeLease hook wrote to JMP_MOTD_FILE. */
  motd: string;
  private status: ExporterStatus;
  private statusMessage = "";
  private statusVersion = 0n;
  private previousStatus?: ExporterStatus;
  private readonly backlog: LogStreamResponse[] = [];
  private readonly listeners = new Set<(r: LogStreamResponse) => void>();
  private readonly endRequested: { promise: Promise<void>; resolve: () => void };
  private closed = false;

  private readonly localFiles: boolean;

  constructor(opts: SessionOptions) {
    this.dispatcher = new Dispatcher(opts.root);
    this.localFiles = opts.localFiles === true;
    this.labels = opts.labels ?? {};
    this.motd = opts.motd ?? "";
    // As upstream: a session starts AVAILABLE and becomes ready for commands.
    this.status = ExporterStatus.AVAILABLE;
    this.setStatus(opts.status ?? ExporterStatus.LEASE_READY, "Ready for commands");
    let resolve!: () => void;
    this.endRequested = { promise: new Promise<void>((r) => (resolve = r)), resolve };
    for (const d of this.dispatcher.drivers.values()) {
      const driverType = driverClassOf(d).driverType;
      d.log = new Logger(d.log.name, (record) => {
        if (LOG_LEVELS.indexOf(record.level) < LOG_LEVELS.indexOf(d.logLevel)) return;
        this.pushLog(record, driverType);
        if (opts.echoLogs) stderrSink(record);
      });
    }
  }

  get root(): Driver {
    return this.dispatcher.root;
  }

  /** Resolves when a client calls EndSession. */
  get ended(): Promise<void> {
    return this.endRequested.promise;
  }

  setStatus(status: ExporterStatus, message = ""): void {
    this.previousStatus = this.status;
    this.status = status;
    this.statusMessage = message;
    this.statusVersion += 1n;
  }

  currentStatus(): ExporterStatus {
    return this.status;
  }

  /** Waiting for a client to read a status: see seen(). */
  private readonly readers = new Map<ExporterStatus, (() => void)[]>();

  /** Resolves once a client's GetStatus has answered with `status` (e.g. it has seen why its lease failed). */
  seen(status: ExporterStatus): Promise<void> {
    return new Promise((resolve) => this.readers.set(status, [...(this.readers.get(status) ?? []), resolve]));
  }

  /** A log line from the exporter itself (hooks, system), visible to clients. */
  systemLog(level: LogLevel, message: string, source = LogSource.SYSTEM): void {
    this.emit(create(LogStreamResponseSchema, {
      uuid: this.uuid,
      severity: SEVERITY[level],
      message,
      source,
      timestamp: timestampFromDate(new Date()),
    }));
  }

  private pushLog(record: LogRecord, driverType: string): void {
    this.emit(create(LogStreamResponseSchema, {
      uuid: this.uuid,
      severity: SEVERITY[record.level],
      message: record.message,
      source: LogSource.DRIVER,
      driverType,
      operation: record.fields?.operation,
      timestamp: timestampFromDate(record.time),
      structuredFields: record.fields ?? {},
    }));
  }

  private emit(entry: LogStreamResponse): void {
    if (this.listeners.size === 0) {
      // Kept for the next LogStream reader, as upstream's queue does.
      this.backlog.push(entry);
      if (this.backlog.length > LOG_BACKLOG) this.backlog.shift();
      return;
    }
    for (const l of this.listeners) l(entry);
  }

  /** Adds a hook's text to the MOTD clients get from GetReport. */
  appendMotd(text: string): void {
    this.motd = [this.motd.trimEnd(), text].filter(Boolean).join("\n");
  }

  private checkCallable(audience: Audience): void {
    if (CALLABLE[audience].has(this.status)) return;
    const hook = RUNNING_HOOK[this.status];
    throw new ConnectError(
      hook
        ? `the exporter's ${hook} hook is running: driver calls wait until it has finished (status: ${ExporterStatus[this.status]})`
        : `Exporter not ready for driver calls (status: ${ExporterStatus[this.status]})`,
      Code.FailedPrecondition,
    );
  }

  /** Both services for clients, on a Connect router. */
  readonly routes = this.connectRoutes("client");

  /**
   * The services again, for the socket a hook's `j` uses (see Audience); serve them only
   * while a hook runs. Fresh for each hook: closing one hook's socket ends its raw
   * routes for good (their `shutdown`), and the next hook's calls must not inherit that.
   */
  hookRoutes(): { routes: (router: ConnectRouter) => void; rawRoutes: Record<string, RawHandler> } {
    return { routes: this.connectRoutes("hook"), rawRoutes: this.streamRoutes("hook") };
  }

  private connectRoutes(audience: Audience): (router: ConnectRouter) => void {
    return (router) => this.registerServices(router, audience);
  }

  private registerServices(router: ConnectRouter, audience: Audience): void {
    router.service(ExporterService, {
      getReport: () => ({
        uuid: this.uuid,
        labels: this.labels,
        reports: reportTree(this.root),
        motd: this.motd,
      }),
      // gRPC callers are answered by the raw route (see streamRoutes); this serves gRPC-Web and Connect.
      driverCall: async (req, ctx) => {
        try {
          return await this.driverCall(req, ctx.signal, audience);
        } catch (e) {
          throw this.failed(e, req.method);
        }
      },
      streamingDriverCall: async function* (this: ExporterSession, req: StreamingDriverCallRequest, ctx: HandlerContext) {
        this.checkCallable(audience);
        try {
          // Inside the try: a method that does not exist, or is not a stream, is the caller's
          // mistake (NotFound, naming it), not an unexpected "internal error".
          const it = this.dispatcher.streamingCall(req.uuid, req.method, req.args.map(fromValue), ctx.signal);
          for await (const item of it) yield { uuid: crypto.randomUUID(), result: toValue(item, "result") };
        } catch (e) {
          if (ctx.signal.aborted) return;
          throw this.failed(e, req.method);
        }
      }.bind(this),
      logStream: async function* (this: ExporterSession, _req: unknown, ctx: HandlerContext) {
        const queue: LogStreamResponse[] = this.backlog.splice(0);
        let wake: (() => void) | undefined;
        const listener = (r: LogStreamResponse) => {
          queue.push(r);
          wake?.();
        };
        this.listeners.add(listener);
        const aborted = new Promise<void>((r) => ctx.signal.addEventListener("abort", () => r(), { once: true }));
        try {
          while (!ctx.signal.aborted && !this.closed) {
            const next = queue.shift();
            if (next) {
              yield next;
              continue;
            }
            await Promise.race([new Promise<void>((r) => (wake = r)), aborted]);
            wake = undefined;
          }
        } finally {
          this.listeners.delete(listener);
        }
      }.bind(this),
      reset: () => {
        throw new ConnectError("Reset is not implemented", Code.Unimplemented);
      },
      getStatus: () => {
        for (const resolve of this.readers.get(this.status) ?? []) resolve();
        this.readers.delete(this.status);
        return {
          status: this.status,
          message: this.statusMessage,
          statusVersion: this.statusVersion,
          previousStatus: this.previousStatus,
        };
      },
      endSession: () => {
        this.endRequested.resolve();
        return { success: true, message: "session end requested" };
      },
    });
  }

  private async driverCall(req: DriverCallRequest, signal: AbortSignal, audience: Audience): Promise<DriverCallResponse> {
    this.checkCallable(audience);
    const result = await this.dispatcher.call(req.uuid, req.method, req.args.map(fromValue), signal);
    return create(DriverCallResponseSchema, { uuid: crypto.randomUUID(), result: toValue(result, "result") });
  }

  private failed(e: unknown, method: string): ConnectError {
    const err = toConnectError(e);
    const level: LogLevel = err.code === Code.Unknown || err.code === Code.Internal ? "error" : "warn";
    this.systemLog(level, `${method} failed: ${err.rawMessage}`);
    return err;
  }

  /**
   * RouterService.Stream, answered on the raw HTTP/2 request (session-stream.ts):
   * give it to the server beside `routes`. Its `shutdown` ends every open byte
   * stream with UNAVAILABLE and the server's message.
   */
  readonly rawRoutes = this.streamRoutes("client");

  /**
   * Each set of routes has its own calls to end: the hook socket closes long before the client's.
   * DriverCall is here too, answered without Connect (src/common/grpc-unary.ts says why).
   */
  private streamRoutes(audience: Audience): Record<string, RawHandler> {
    // Aborted, with the status to end them with, when the server drains: every byte stream ends.
    const stopped = new AbortController();
    return {
      [DRIVER_CALL_PATH]: Object.assign((req: Http2ServerRequest, res: Http2ServerResponse) => {
        serveUnary(req, res, {
          decode: (bytes) => fromBinary(DriverCallRequestSchema, bytes),
          encode: (reply: DriverCallResponse) => toBinary(DriverCallResponseSchema, reply),
          handle: (request, signal) => {
            noteWork();
            return this.driverCall(request, signal, audience);
          },
          failed: (e, request) => this.failed(e, request.method),
          stop: stopped.signal,
          maxBytes: MAX_REQUEST_BYTES,
          observe: driverCallObserver(),
        });
      }, {
        accepts: isGrpc,
        shutdown: (message: string) => stopped.abort(new ConnectError(message, Code.Unavailable)),
      }),
      [ROUTER_STREAM_PATH]: Object.assign((req: Http2ServerRequest, res: Http2ServerResponse) => {
        const raw = req.headers.request;
        const request = typeof raw === "string" ? raw : undefined;
        serveByteStream(req, res, {
          open: (signal) => this.openByteStream(request, signal, audience),
          failed: (e) => this.failed(e, describeStream(request)),
          stop: stopped.signal,
        });
      }, {
        shutdown: (message: string) => stopped.abort(new ConnectError(message, Code.Unavailable)),
        bulk: true,
      }),
    };
  }

  /**
   * The `request` metadata (JSON) says which driver stream to open, or asks for
   * a new client-stream resource.
   */
  private async openByteStream(raw: string | undefined, signal: AbortSignal, audience: Audience): Promise<ByteStream> {
    let request: {
      kind?: string; uuid?: string; method?: string; x_jmp_content_encoding?: string | null; x_jmp_take?: boolean;
      x_jmp_local_file?: unknown; x_jmp_local_file_id?: unknown; x_jmp_transit_encoding?: unknown;
      x_jmp_transit_accept_encoding?: unknown; x_jmp_local_target?: unknown; x_jmp_local_target_id?: unknown;
    };
    try {
      request = JSON.parse(raw ?? "");
    } catch {
      throw new ConnectError("missing or malformed 'request' metadata (expected JSON)", Code.InvalidArgument);
    }
    if (request.kind === "driver" && typeof request.uuid === "string" && typeof request.method === "string") {
      this.checkCallable(audience);
      // x_jmp_take: this connection takes a shared console's input (console-fanout.ts).
      return await this.dispatcher.openStream(request.uuid, request.method, signal, request.x_jmp_take === true ? [{ take: true }] : []);
    }
    if (request.kind === "resource" && typeof request.uuid === "string") {
      const driver = this.dispatcher.driver(request.uuid);
      const resourceUuid = crypto.randomUUID();
      const encoding = request.x_jmp_content_encoding ?? null;
      const accepted = encoding !== null && ACCEPTED_ENCODINGS.has(encoding);
      const handle = { kind: "client_stream", uuid: resourceUuid, x_jmp_content_encoding: encoding };
      const metadata: Record<string, string> = { resource: JSON.stringify(handle), ...(accepted ? { x_jmp_accept_encoding: encoding } : {}) };
      // A file of this machine, read here: the client then sends nothing. Taken only
      // where this session allows it, and only what this side decodes; otherwise (or
      // if the file cannot be opened here) the client streams it as any other.
      const file = this.localFiles && (encoding === null || accepted) ? await openLocalFile(request.x_jmp_local_file, request.x_jmp_local_file_id) : undefined;
      // And a dump's target, written here: the client then receives nothing (local-target.ts).
      const target = this.localFiles && !file && (encoding === null || accepted)
        ? await openLocalTarget(request.x_jmp_local_target, request.x_jmp_local_target_id)
        : undefined;
      // Raw data compressed on the way (TRANSIT_ENCODING), with clients that reach this
      // session over a network: what the client offers to send so is undone here, and
      // what the driver writes goes so where the client takes it (transit.ts).
      const networked = !this.localFiles && audience === "client" && encoding === null;
      const inbound = networked && request.x_jmp_transit_encoding === TRANSIT_ENCODING;
      const outbound = networked && request.x_jmp_transit_accept_encoding === TRANSIT_ENCODING;
      const local = file ?? target;
      let pipe: [ByteStream, ByteStream] = local ? [local.toClient, local.resource] : memoryPipe(RESOURCE_BUFFER);
      if (inbound) pipe = undoTransit(pipe);
      if (outbound) pipe = packTransit(pipe);
      const [ours, theirs] = pipe;
      driver.resources.set(resourceUuid, { stream: theirs, encoding: accepted ? encoding : undefined });
      const extra: Record<string, string> = {
        ...(file ? { x_jmp_local_file: "read" } : {}),
        ...(target ? { x_jmp_local_target: "written" } : {}),
        ...(inbound ? { x_jmp_transit_encoding: TRANSIT_ENCODING } : {}),
        ...(outbound ? { x_jmp_transit_accept_encoding: TRANSIT_ENCODING } : {}),
      };
      return { ...ours, metadata: { ...metadata, ...extra } };
    }
    throw new ConnectError(`unsupported stream request ${raw}`, Code.InvalidArgument);
  }

  /** Ends the session: stops log streams and closes every driver once. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const l of this.listeners) l(create(LogStreamResponseSchema, {}));
    this.listeners.clear();
    const errors = await this.dispatcher.close();
    for (const e of errors) stderrSink({ level: "warn", name: "exporter", message: `closing a driver failed: ${e.message}`, time: new Date() });
  }
}
