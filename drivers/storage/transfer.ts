/**
 * The client half of flashing and dumping: a local file (or an http(s) URL, which
 * the exporter fetches itself) becomes a resource handle for one driver call, with
 * progress on stderr and one summary line at the end.
 */
import { closeSync, openSync, readSync, rmSync, statSync } from "node:fs";
import { type FileHandle, open, rename, rm } from "node:fs/promises";
import { basename, dirname, resolve } from "node:path";
import { detectEncoding, type DriverClient, InvalidArgumentError, peek, sparseFileSink } from "@jumpstarter/driver";
import type { WriteResult } from "./interface.ts";
import { formatBytes, formatTransfer } from "./units.ts";

export const COMPRESSIONS = ["gzip", "zstd", "xz", "bz2"] as const;
export type Compression = (typeof COMPRESSIONS)[number];

export interface TransferOptions {
  /**
   * Flash: the image's compression (default: recognised by its first bytes).
   * Dump: the compression to store the file in (default: from its extension, `.gz`, `.zst`, …).
   */
  compression?: Compression;
  /** Show progress on stderr: a line on a terminal, one summary line otherwise. */
  progress?: boolean;
}

/** What a flash or dump did. */
export interface TransferResult {
  /** Bytes read from the local file (flash) or written to it (dump); unknown for a URL. */
  localBytes?: number;
  /** Bytes written to the storage, when the driver reports it. */
  written?: number;
  /** The sha256 the driver verified, when it verifies. */
  sha256?: string;
  /** The compression of the local file, and who undid (or applied) it. */
  compression?: string;
  codedBy?: "exporter" | "client";
  /** Bytes that crossed the network when raw data went zstd-compressed on the way (with an exporter reached over a network). */
  transitBytes?: number;
  seconds: number;
}

type Call = (handle: unknown) => Promise<unknown>;

export function isUrl(source: string): boolean {
  return /^https?:\/\//i.test(source);
}

/** Hands the image at `source` (a file or an http(s) URL) to `call` as a resource handle. */
export async function upload(
  client: DriverClient,
  source: string,
  call: Call,
  options: TransferOptions & { verb: string; target?: string },
): Promise<TransferResult> {
  const started = performance.now();
  const shown = isUrl(source) ? source.replace(/\?.*/, "") : basename(source);
  const label = `${options.verb} ${shown}${options.target ? ` to ${options.target}` : ""}`;
  if (isUrl(source)) {
    if (options.compression) {
      throw new InvalidArgumentError("--compression does not apply to a URL: the exporter recognises a compressed image itself");
    }
    let written;
    try {
      written = writeResult(await call({ kind: "presigned_request", url: source, method: "GET", headers: {} }));
    } catch (e) {
      throw named(e, label);
    }
    const result = { ...written, seconds: seconds(started) };
    if (options.progress) {
      const size = result.written === undefined ? "" : `: ${formatTransfer(result.written, result.seconds)}`;
      process.stderr.write(`${[`${label}${size}`, "fetched by the exporter", ...reported(result)].join(", ")}\n`);
    }
    return result;
  }
  const size = localSize(source);
  const [head, data] = await peek(await readFileChunks(source));
  let compression: Compression | undefined;
  try {
    compression = imageCompression(source, head, options.compression);
  } catch (e) {
    await data.cancel().catch(() => {});
    throw e;
  }
  // The runtime's negotiation decides who decompresses: the exporter if it accepts
  // the format (ours does all four), else this process.
  let localBytes = 0;
  let transfer;
  try {
    transfer = await client.resource(data, {
      encoding: compression,
      onProgress: (n) => (localBytes = n),
      progress: options.progress ? { label, total: size } : undefined,
      // A local session reads the image itself, sparing two trips through HTTP/2.
      localFile: resolve(source),
      // Any other may take it compressed on the way, if it compresses.
      transit: compression === undefined && size !== undefined && compressesWell(source, size),
    });
  } catch (e) {
    throw named(e, label);
  }
  try {
    const [answer] = await Promise.all([call(transfer.handle), transfer.done]);
    const result: TransferResult = {
      localBytes: transfer.readByExporter ? size : transfer.transit ? transfer.transit.bytes() : localBytes,
      ...writeResult(answer),
      compression: transfer.encoding,
      codedBy: transfer.codedBy,
      transitBytes: transfer.transit?.compressed(),
      seconds: seconds(started),
    };
    const decoded = result.compression ? [`${result.compression} decompressed by the ${result.codedBy}`] : [];
    const read = transfer.readByExporter ? ["read from the file by the exporter"] : [];
    const transit = result.transitBytes !== undefined ? [`sent as ${formatBytes(result.transitBytes)} of zstd`] : [];
    transfer.finish([...read, ...decoded, ...transit, ...reported(result)].join(", ") || undefined);
    return result;
  } catch (e) {
    throw named(e, label);
  } finally {
    transfer.close();
  }
}

/**
 * The compression of a local image: what its first bytes say, or `given`. A file
 * named as compressed that does not start like it is refused, since flashing it as
 * a raw image would look like success.
 */
function imageCompression(path: string, head: Uint8Array, given: Compression | undefined): Compression | undefined {
  const name = basename(path);
  const found = detectEncoding(head);
  if (given) {
    // xz and bz2 data always starts with its magic (unlike zstd, which may start
    // with a skippable frame): saying so now beats a "corrupt data" failure after
    // the storage was switched to the host and partly written.
    if ((given === "xz" || given === "bz2") && found !== given) {
      throw new InvalidArgumentError(`${name} is not ${given} data: it does not start like ${given}${found ? ` (it looks like ${found})` : ""}`);
    }
    return given;
  }
  const byName = compressionOf(path);
  if (byName && !found) {
    throw new InvalidArgumentError(
      `${name} is named as ${byName} data but does not start like it: it is corrupt, or misnamed`,
    );
  }
  return found;
}

/** The error with the transfer's label in front, so that it names the file (and the target). */
function named(e: unknown, label: string): unknown {
  if (e instanceof Error && !e.message.startsWith(`${label}: `)) e.message = `${label}: ${e.message}`;
  return e;
}

/** Runs `call` with a resource handle whose data lands in the file at `path`. */
export async function download(client: DriverClient, path: string, call: Call, options: TransferOptions & { verb: string }): Promise<TransferResult> {
  if (isUrl(path)) throw new InvalidArgumentError("dumping to a URL is not supported: give a local file name");
  const started = performance.now();
  const compression = options.compression ?? compressionOf(path);
  // Written beside the target and renamed at the end: a failed dump leaves an
  // existing file as it was and no partial image that looks like a whole one.
  const partial = `${path}.partial`;
  return removedOnSignal(partial, receive);

  async function receive(): Promise<TransferResult> {
    let file: FileHandle;
    try {
      file = await open(partial, "w");
    } catch (e) {
      throw cannotWrite(path, e);
    }
    let localBytes = 0;
    const sink = sparseFileSink(file);
    try {
      const transfer = await client.resource(null, {
        encoding: compression,
        into: sink,
        onProgress: (n) => (localBytes = n),
        progress: options.progress ? { label: `${options.verb} ${basename(path)}`, total: undefined } : undefined,
        // A raw dump from an exporter over a network may come compressed on the way:
        // the exporter compresses what shrinks (empty space) and sends the rest as it is.
        transit: true,
        // A local session writes the file itself, sparing two trips through HTTP/2.
        localFile: resolve(partial),
      });
      try {
        await Promise.all([call(transfer.handle), transfer.done]);
        // Whole and synced by the session: only this side's handle is left to close.
        if (transfer.writtenByExporter) await file.close();
        await rename(partial, path);
        const transitBytes = transfer.transit?.compressed();
        const result: TransferResult = { localBytes, compression, codedBy: transfer.codedBy, transitBytes, seconds: seconds(started) };
        const written = transfer.writtenByExporter ? ["written to the file by the exporter"] : [];
        const coded = compression ? [`${compression}-compressed by the ${transfer.codedBy}`] : [];
        const transit = transitBytes !== undefined ? [`received as ${formatBytes(transitBytes)} of zstd`] : [];
        transfer.finish([...written, ...coded, ...transit].join(", ") || undefined);
        return result;
      } finally {
        transfer.close();
      }
    } catch (e) {
      await file.close().catch(() => {});
      await rm(partial, { force: true });
      throw e;
    }
  }
}

/** Why a dump cannot be written at `path`, as a user reads it (the error names the file, not its `.partial`). */
function cannotWrite(path: string, e: unknown): InvalidArgumentError {
  const err = e as NodeJS.ErrnoException;
  const why = {
    ENOENT: `the directory ${dirname(resolve(path))} does not exist`,
    ENOTDIR: "a part of the path is not a directory",
    EACCES: "permission denied",
    EPERM: "permission denied",
    EROFS: "read-only file system",
    ENOSPC: "no space left on the device",
  }[err.code ?? ""] ?? err.message;
  return new InvalidArgumentError(`cannot write the dump to ${path}: ${why}`);
}

const ENDING_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

/**
 * Runs `work`, removing `path` if a signal ends the process meanwhile: a dump
 * interrupted with Ctrl-C, or by a closed terminal, leaves no `.partial` file
 * behind. The signal then does what it would have done without this listener: a
 * process with no other listener for it ends by it (130 for Ctrl-C, as before).
 */
async function removedOnSignal<T>(path: string, work: () => Promise<T>): Promise<T> {
  const stop = () => {
    for (const s of ENDING_SIGNALS) process.off(s, onSignal);
  };
  const onSignal = (signal: NodeJS.Signals) => {
    rmSync(path, { force: true });
    stop();
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
  };
  for (const s of ENDING_SIGNALS) process.on(s, onSignal);
  try {
    return await work();
  } finally {
    stop();
  }
}

/** Pieces of a raw image compressed to see whether it is worth compressing on the way. */
const SAMPLES = 8;
const SAMPLE_BYTES = 256 * 1024;

/**
 * Whether a raw image would shrink by a quarter or more as zstd: a disk image
 * with empty space does (the benchmark's, to 6%), one filled with compressed or
 * encrypted data does not. Eight pieces spread over the file, ~5–10 ms.
 */
function compressesWell(path: string, size: number): boolean {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch {
    return false;
  }
  try {
    const piece = Buffer.allocUnsafe(SAMPLE_BYTES);
    let raw = 0;
    let packed = 0;
    for (let i = 0; i < SAMPLES; i++) {
      const at = Math.floor((Math.max(0, size - SAMPLE_BYTES) * i) / (SAMPLES - 1));
      const n = readSync(fd, piece, 0, SAMPLE_BYTES, at);
      raw += n;
      packed += Bun.zstdCompressSync(piece.subarray(0, n), { level: 1 }).byteLength;
    }
    return raw > 0 && packed < raw * 0.75;
  } finally {
    closeSync(fd);
  }
}

/** Bytes per read of the local image. */
const READ_BYTES = 2 ** 20;

/**
 * The file at `path` as a stream of fresh chunks, read on the runtime's thread
 * pool: Bun.file().stream() read on the main thread, which also frames and sends
 * every byte of a flash (a third of its time went to those reads). Reads go on
 * from the current offset, so a pipe or a block device works too.
 */
async function readFileChunks(path: string): Promise<ReadableStream<Uint8Array>> {
  const file = await open(path, "r");
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        // A fresh buffer each time, as the consumer holds on to what it is given;
        // not zeroed first, since only what the read filled is passed on.
        const buffer = Buffer.allocUnsafeSlow(READ_BYTES);
        const { bytesRead } = await file.read(buffer, 0, READ_BYTES, null);
        if (bytesRead > 0) return controller.enqueue(buffer.subarray(0, bytesRead));
        controller.close();
      } catch (e) {
        controller.error(e);
      }
      await file.close();
    },
    async cancel() {
      await file.close();
    },
  });
}

function localSize(path: string): number | undefined {
  let stats;
  try {
    stats = statSync(path);
  } catch {
    throw new InvalidArgumentError(`no such file: ${path}`);
  }
  if (stats.isDirectory()) throw new InvalidArgumentError(`${path} is a directory, not an image`);
  // A block device or a pipe reports no useful size.
  return stats.isFile() ? stats.size : undefined;
}

const EXTENSIONS: Record<string, Compression> = { ".gz": "gzip", ".zst": "zstd", ".xz": "xz", ".bz2": "bz2" };

function compressionOf(path: string): Compression | undefined {
  const ext = /\.[a-z0-9]+$/i.exec(path)?.[0]?.toLowerCase();
  return ext ? EXTENSIONS[ext] : undefined;
}

/** Upstream's drivers answer nothing; ours report bytes written and, when verifying, the digest. */
function writeResult(answer: unknown): Pick<TransferResult, "written" | "sha256"> {
  const r = (typeof answer === "object" && answer !== null ? answer : {}) as Partial<WriteResult>;
  return {
    ...(typeof r.bytes === "number" ? { written: r.bytes } : {}),
    ...(typeof r.sha256 === "string" ? { sha256: r.sha256 } : {}),
  };
}

/** What the driver reported, for the summary: `256.0 MiB written`, `sha256 … verified`. */
function reported(result: TransferResult): string[] {
  const parts: string[] = [];
  if (result.written !== undefined && result.localBytes !== undefined && result.written !== result.localBytes) {
    parts.push(`${formatBytes(result.written)} written`);
  }
  if (result.sha256) parts.push(`sha256 ${result.sha256} verified`);
  return parts;
}

function seconds(since: number): number {
  return (performance.now() - since) / 1000;
}

/** Checks a `--compression` value. */
export function parseCompression(value: string | undefined): Compression | undefined {
  if (value === undefined || value === "") return undefined;
  if (!(COMPRESSIONS as readonly string[]).includes(value)) {
    throw new InvalidArgumentError(`--compression must be one of ${COMPRESSIONS.join(", ")}, got '${value}'`);
  }
  return value as Compression;
}
