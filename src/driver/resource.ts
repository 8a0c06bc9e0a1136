/**
 * Resources: data a client hands to a driver call. The client opens a byte stream
 * of kind "resource"; the exporter keeps one end under a new uuid and answers with a
 * JSON handle that the client passes as an ordinary argument (e.g. `flash(handle)`).
 * A handle may instead name a URL that the exporter fetches itself.
 */
import { InvalidArgumentError, NotImplementedDriverError, UnavailableError } from "./errors.ts";
import type { ByteStream } from "./byte-stream.ts";
import { CODECS, codecMissing, decode, encoder } from "./encoding.ts";

export interface ClientStreamHandle {
  kind: "client_stream";
  uuid: string;
  x_jmp_content_encoding?: string | null;
}

export interface PresignedRequestHandle {
  kind: "presigned_request";
  url: string;
  method: "GET" | "PUT";
  headers: Record<string, string>;
}

export type ResourceHandle = ClientStreamHandle | PresignedRequestHandle;

export interface PendingResource {
  stream: ByteStream;
  /** Set when the exporter agreed to decompress what the client sends. */
  encoding?: string;
}

export type ResourceTable = Map<string, PendingResource>;

/**
 * How far a session that reads a client's file itself (local mode, x_jmp_local_file)
 * has come: a notice on the resource's stream, `x_jmp_read N`, which the client's
 * progress display follows (DriverClient.resource).
 */
export const readNotice = (bytes: number): string => `x_jmp_read ${bytes}`;

/** The bytes a read notice reports; undefined for any other notice. */
export function bytesRead(notice: string): number | undefined {
  const m = /^x_jmp_read (\d+)$/.exec(notice);
  return m ? Number(m[1]) : undefined;
}

/**
 * Raw data sent to an exporter reached over a network is offered to it compressed
 * on the way (`x_jmp_transit_encoding` in the resource request); an exporter that
 * echoes the key in the stream's metadata undoes it before its driver reads a byte,
 * and any other (upstream's, or ours in local mode, where compressing would cost
 * more than it saves) gets the bytes as they are. A disk image is mostly zeros:
 * 512 MiB of the benchmark's image are 34 MB of zstd, made at ~1 GB/s, and a
 * router moves ~100 MB/s. Data that does not compress would only cost CPU at both
 * ends (25–30% slower through a router on one 2-core machine), so a client offers
 * it only for data a sample says compresses well (DriverClient.resource's `transit`).
 *
 * The other way (a dump), the client says it takes zstd
 * (`x_jmp_transit_accept_encoding`), and an exporter that echoes that key sends
 * what its driver writes as zstd frames, compressing only the pieces that shrink,
 * since it cannot sample a disk before its driver reads it (transit-pack.ts).
 * A separate key, so that an exporter that knows only the first never answers a
 * dump's offer with a promise it does not keep.
 */
export const TRANSIT_ENCODING = "zstd";

/**
 * Content encodings the exporter decompresses itself (the client handles any other):
 * gzip, zstd, xz and bz2, for every driver. `JMP_DISABLE_COMPRESSION=1` turns this
 * off, as upstream: the client then decodes before sending, which spares a slow
 * exporter CPU at the cost of bandwidth. Read at each request, so that a test (or an
 * embedding program) may change it without a new process.
 */
export const ACCEPTED_ENCODINGS: Pick<ReadonlySet<string>, "has"> = {
  has: (encoding) => process.env.JMP_DISABLE_COMPRESSION !== "1" && CODECS.has(encoding),
};

export function parseHandle(handle: unknown): ResourceHandle {
  const h = typeof handle === "string" ? safeJson(handle) : handle;
  if (typeof h !== "object" || h === null) throw new InvalidArgumentError("expected a resource handle (a JSON object)");
  const r = h as Record<string, unknown>;
  if (r.kind === "client_stream" && typeof r.uuid === "string") {
    return { kind: "client_stream", uuid: r.uuid, x_jmp_content_encoding: (r.x_jmp_content_encoding as string | null) ?? null };
  }
  if (r.kind === "presigned_request" && typeof r.url === "string" && (r.method === "GET" || r.method === "PUT")) {
    const headers = typeof r.headers === "object" && r.headers !== null ? (r.headers as Record<string, string>) : {};
    return { kind: "presigned_request", url: r.url, method: r.method, headers };
  }
  throw new InvalidArgumentError(`not a resource handle: ${JSON.stringify(h).slice(0, 120)}`);
}

function safeJson(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    throw new InvalidArgumentError("expected a resource handle, got a string that is not JSON");
  }
}

export async function openResource(table: ResourceTable, handle: unknown): Promise<ByteStream> {
  const h = parseHandle(handle);
  if (h.kind === "client_stream") {
    const pending = table.get(h.uuid);
    if (!pending) throw new InvalidArgumentError(`no resource ${h.uuid} is open on this driver (was it used already?)`);
    table.delete(h.uuid);
    if (!pending.encoding) return pending.stream;
    // A missing program (xz, bzip2) fails the call here, before the driver touches
    // its storage, rather than at the driver's first read.
    const missing = codecMissing(pending.encoding);
    if (missing) throw missing;
    // What the driver reads arrives decoded; what it writes (a dump) leaves encoded,
    // so the client stores it as the file it asked for.
    const encode = encoder(pending.encoding);
    encode.readable.pipeTo(pending.stream.writable).catch(() => {});
    return { readable: decode(pending.stream.readable, pending.encoding), writable: encode.writable };
  }
  return presigned(h);
}

async function presigned(h: PresignedRequestHandle): Promise<ByteStream> {
  let url: URL;
  try {
    url = new URL(h.url);
  } catch {
    throw new InvalidArgumentError(`not a URL: ${h.url}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new InvalidArgumentError(`only http and https URLs can be fetched, got ${url.protocol}`);
  }
  // Presigned URLs carry credentials in the query: messages show origin and path only.
  const shown = `${url.origin}${url.pathname}`;
  if (h.method === "GET") {
    let response: Response;
    try {
      response = await fetch(url, { headers: h.headers });
    } catch (e) {
      throw new UnavailableError(`GET ${shown} failed: ${(e as Error).message}`);
    }
    if (!response.ok || !response.body) {
      throw new InvalidArgumentError(`GET ${shown} failed: HTTP ${response.status}`);
    }
    const refuse = new WritableStream<Uint8Array>({
      write() {
        throw new NotImplementedDriverError("a GET resource is read-only");
      },
    });
    return { readable: response.body, writable: refuse };
  }
  const body = new TransformStream<Uint8Array, Uint8Array>();
  const done = fetch(url, { method: "PUT", headers: h.headers, body: body.readable, duplex: "half" } as RequestInit);
  const empty = new ReadableStream<Uint8Array>({ start: (c) => c.close() });
  const writable = new WritableStream<Uint8Array>({
    async write(chunk) {
      const w = body.writable.getWriter();
      try {
        await w.write(chunk);
      } finally {
        w.releaseLock();
      }
    },
    async close() {
      await body.writable.close();
      const response = await done;
      if (!response.ok) throw new InvalidArgumentError(`PUT ${shown} failed: HTTP ${response.status}`);
    },
  });
  return { readable: empty, writable };
}
