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
import { isAbsolute } from "node:path";
import { Notices, type ByteStream } from "../driver/byte-stream.ts";
import { NotImplementedDriverError } from "../driver/errors.ts";
import { readNotice } from "../driver/resource.ts";

/** How often the client hears how far the read has come. */
const PROGRESS_MS = 200;

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
  const file = Bun.file(path);
  let reader: ReadableStreamDefaultReader<Uint8Array>;
  let first: Read;
  try {
    const stat = await file.stat();
    if (!stat.isFile() || `${stat.size}:${stat.mtimeMs}` !== id) return undefined;
    // The first read now, so that a file this process may not read falls back to streaming.
    reader = file.stream().getReader() as ReadableStreamDefaultReader<Uint8Array>;
    first = (await reader.read()) as Read;
  } catch {
    return undefined;
  }
  const notices = new Notices();
  let bytes = 0;
  let told = -1;
  let ended!: () => void;
  const tell = () => {
    if (bytes !== told) notices.tell(readNotice((told = bytes)));
  };
  const timer = setInterval(tell, PROGRESS_MS);
  const end = () => {
    clearInterval(timer);
    tell();
    ended();
  };
  const toClient: ByteStream = {
    readable: new ReadableStream<Uint8Array>({
      start: (c) => void (ended = () => c.close()),
      // The client went away (or gave up): stop telling, and stop reading for a driver that may still be.
      cancel: (reason) => {
        clearInterval(timer);
        void reader.cancel(reason).catch(() => {});
      },
    }),
    // What the client sends on it (nothing, then its end) is dropped.
    writable: new WritableStream<Uint8Array>(),
    notices,
  };
  const take = (controller: ReadableStreamDefaultController<Uint8Array>, r: Read) => {
    if (r.done) {
      controller.close();
      end();
      return;
    }
    bytes += r.value.byteLength;
    controller.enqueue(r.value);
  };
  const readable = new ReadableStream<Uint8Array>({
    start: (controller) => take(controller, first),
    async pull(controller) {
      try {
        take(controller, (await reader.read()) as Read);
      } catch (e) {
        end();
        controller.error(e);
      }
    },
    cancel(reason) {
      end();
      return reader.cancel(reason);
    },
  }, { highWaterMark: 2 });
  const writable = new WritableStream<Uint8Array>({
    write() {
      throw new NotImplementedDriverError("a file handed over by its path is read-only");
    },
  });
  return { resource: { readable, writable }, toClient };
}
