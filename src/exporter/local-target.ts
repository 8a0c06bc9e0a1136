/**
 * A client's file written by the session itself (local mode): a dump's target, named
 * by `x_jmp_local_target` in a resource request, when the session allows it
 * (SessionOptions.localFiles). `j storage dump FILE` in a local `jmp shell` then costs
 * one read of the storage and one write of the file, instead of also two trips
 * through HTTP/2 between processes and a copy of every message on the client's side.
 *
 * The client creates the file (empty) and names it with its device and inode, so a
 * client in another mount namespace never has the session write another file that
 * happens to have the same path; the session writes only an empty regular file that
 * is that one. The resource's stream to the client carries no bytes: notices of how
 * far the writing has come (as a local flash's `x_jmp_read`), and its end once the
 * file is whole and synced, or the error that stopped it.
 */
import type { Stats } from "node:fs";
import { open, stat, type FileHandle } from "node:fs/promises";
import { isAbsolute } from "node:path";
import type { ByteStream } from "../driver/byte-stream.ts";
import { sparseFileSink } from "../driver/sparse-file.ts";
import type { LocalFile } from "./local-file.ts";
import { ReadProgress } from "./read-progress.ts";

/** The file at `path` to write, or undefined when it is not the empty regular file `id` ("DEV:INO") names. */
export async function openLocalTarget(path: unknown, id: unknown): Promise<LocalFile | undefined> {
  if (typeof path !== "string" || !isAbsolute(path) || typeof id !== "string") return undefined;
  const same = (s: Stats) => s.isFile() && s.size === 0 && `${s.dev}:${s.ino}` === id;
  let file: FileHandle;
  try {
    // Looked at before it is opened: opening a named pipe would wait for a reader.
    if (!same(await stat(path))) return undefined;
    // Neither created nor truncated here: only the file the client made.
    file = await open(path, "r+");
  } catch {
    return undefined;
  }
  try {
    if (!same(await file.stat())) throw new Error("not the client's file");
  } catch {
    await file.close().catch(() => {});
    return undefined;
  }
  const progress = new ReadProgress();
  const sink = sparseFileSink(file, (n) => progress.add(n)).getWriter();
  let settle!: (error?: unknown) => void;
  const toClient: ByteStream = {
    readable: new ReadableStream<Uint8Array>({
      start: (c) => void (settle = (error) => (error === undefined ? c.close() : c.error(error))),
      // The client went away: the driver's next write fails, and the file is left to the client.
      cancel: (reason) => void sink.abort(reason).catch(() => {}),
    }),
    // What the client sends on it (nothing, then its end) is dropped.
    writable: new WritableStream<Uint8Array>(),
    notices: progress.notices,
  };
  const writable = new WritableStream<Uint8Array>({
    write: (chunk) => sink.write(chunk),
    async close() {
      try {
        await sink.close();
      } catch (e) {
        settle(e);
        throw e;
      }
      progress.end();
      settle();
    },
    async abort(reason) {
      await sink.abort(reason).catch(() => {});
      settle(reason ?? new Error("the driver stopped writing the dump"));
    },
  });
  // A dump's driver only writes; what it would read is empty.
  const readable = new ReadableStream<Uint8Array>({ start: (c) => c.close() });
  return { resource: { readable, writable }, toClient };
}
