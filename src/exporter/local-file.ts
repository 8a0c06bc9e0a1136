/**
 * A client's file read by the session itself (local mode): what `x_jmp_local_file`
 * names in a resource request, when the session allows it (SessionOptions.localFiles).
 * `j storage flash IMAGE` in a local `jmp shell` then costs one read and one write of
 * the image instead of also two trips through HTTP/2 between processes.
 *
 * The resource's stream to the client carries no bytes, only progress: notices
 * `x_jmp_read N` (the bytes read so far, a few times a second) until the file has been
 * read, so the client shows its progress as if it were sending the file.
 */
import type { Stats } from "node:fs";
import { open, stat, type FileHandle } from "node:fs/promises";
import { isAbsolute } from "node:path";
import type { ByteStream } from "../driver/byte-stream.ts";
import { NotImplementedDriverError } from "../driver/errors.ts";
import { ReadProgress } from "./read-progress.ts";

/**
 * Bytes per read, into buffers the driver may hand back (ByteStream.recycle) once
 * it has written them: a flash then copies through the same dozen buffers. Fresh
 * memory for every chunk cost more than the copy itself: 512 MiB read and written
 * in 1 MiB chunks took 390–430 ms with a new buffer each, 140–155 ms with recycled
 * ones, against an fsync of ~240 ms (bench/README.md, round 12). A buffer is
 * allocUnsafe: every byte handed on has just been read into it.
 */
const CHUNK_BYTES = 1024 * 1024;
/** Buffers kept for reuse: a flash holds two 4 MiB blocks and the stream's queue of two. */
const POOL_MAX = 16;

type Read = { done: true; value?: undefined } | { done: false; value: Uint8Array };

export interface LocalFile {
  /** What the driver reads: the file, read-only. */
  resource: ByteStream;
  /** The resource stream's other end, towards the client: progress only, open until the file is read. */
  toClient: ByteStream;
}

/**
 * The file at `path`, or undefined when it is not an absolute path to a regular file
 * this process can read whose size and modification time are `id` ("SIZE:MTIME_MS",
 * as the client saw them: a client in another mount namespace may name another file
 * by the same path). The client then streams it, and reports its own error if it
 * cannot read it either.
 */
export async function openLocalFile(path: unknown, id: unknown): Promise<LocalFile | undefined> {
  if (typeof path !== "string" || !isAbsolute(path) || typeof id !== "string") return undefined;
  const same = (s: Stats) => s.isFile() && `${s.size}:${s.mtimeMs}` === id;
  let file: FileHandle;
  try {
    // Looked at before it is opened: opening a named pipe would wait for a writer.
    if (!same(await stat(path))) return undefined;
    file = await open(path, "r");
  } catch {
    return undefined;
  }
  let closed: Promise<void> | undefined;
  const close = () => (closed ??= file.close().catch(() => {}));
  const pool: Buffer[] = [];
  // Weak: a chunk its consumer keeps, or drops without handing back, is not held here.
  const lent = new WeakMap<Uint8Array, Buffer>();
  const read = async (): Promise<Read> => {
    const buffer = pool.pop() ?? Buffer.allocUnsafe(CHUNK_BYTES);
    const { bytesRead } = await file.read(buffer, 0, CHUNK_BYTES, null);
    if (bytesRead === 0) {
      await close();
      return { done: true };
    }
    // A plain Uint8Array, as Bun.file().stream() gave: a Buffer's slice() would be a view.
    const chunk = new Uint8Array(buffer.buffer, buffer.byteOffset, bytesRead);
    lent.set(chunk, buffer);
    return { done: false, value: chunk };
  };
  const recycle = (chunk: Uint8Array) => {
    const buffer = lent.get(chunk);
    // Handed back once only: a second time would give one buffer to two reads.
    if (!buffer || !lent.delete(chunk)) return;
    if (pool.length < POOL_MAX) pool.push(buffer);
  };
  let first: Read;
  try {
    // And again once open: the file read is the one the client saw.
    if (!same(await file.stat())) {
      await close();
      return undefined;
    }
    // The first read now, so that a file this process may not read falls back to streaming.
    first = await read();
  } catch {
    await close();
    return undefined;
  }
  const progress = new ReadProgress();
  let ended!: () => void;
  const end = () => {
    progress.end();
    ended();
  };
  const toClient: ByteStream = {
    readable: new ReadableStream<Uint8Array>({
      start: (c) => void (ended = () => c.close()),
      // The client went away (or gave up): stop reading for a driver that may still be.
      cancel: () => void close(),
    }),
    // What the client sends on it (nothing, then its end) is dropped.
    writable: new WritableStream<Uint8Array>(),
    notices: progress.notices,
  };
  const take = (controller: ReadableStreamDefaultController<Uint8Array>, r: Read) => {
    if (r.done) {
      controller.close();
      end();
      return;
    }
    progress.add(r.value.byteLength);
    controller.enqueue(r.value);
  };
  const readable = new ReadableStream<Uint8Array>({
    start: (controller) => take(controller, first),
    async pull(controller) {
      try {
        take(controller, await read());
      } catch (e) {
        end();
        void close();
        controller.error(e);
      }
    },
    cancel() {
      end();
      return close();
    },
  }, { highWaterMark: 2 });
  const writable = new WritableStream<Uint8Array>({
    write() {
      throw new NotImplementedDriverError("a file handed over by its path is read-only");
    },
  });
  return { resource: { readable, writable, recycle }, toClient };
}
