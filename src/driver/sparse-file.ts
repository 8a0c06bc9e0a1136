/**
 * A dump's bytes into a new file, leaving its runs of zeros as holes: a disk's empty
 * space then costs no write and no disk space, and reads back as the zeros it was.
 * Used by the client writing a dump it received, and by a local session writing the
 * client's file itself (exporter/local-target.ts).
 */
import type { FileHandle } from "node:fs/promises";
import { filledWith } from "./transit-pack.ts";

/** Runs of zeros this long (and so aligned in each chunk) are left as holes. */
const HOLE_BYTES = 64 * 1024;

/**
 * A writable into `file`, which must be new (empty): it writes from offset 0, skips
 * zeros, and on close sets the file's length (zeros at the end are a hole too),
 * syncs and closes it. Aborted, it only closes it. `onWritten` hears the length of each chunk once written.
 */
export function sparseFileSink(file: FileHandle, onWritten?: (bytes: number) => void): WritableStream<Uint8Array> {
  let position = 0;
  return new WritableStream<Uint8Array>({
    async write(chunk) {
      for (const [from, to] of dataRuns(chunk)) {
        for (let at = from; at < to;) at += (await file.write(chunk, at, to - at, position + at)).bytesWritten;
      }
      position += chunk.byteLength;
      onWritten?.(chunk.byteLength);
    },
    async close() {
      await file.truncate(position);
      await file.sync();
      await file.close();
    },
    async abort() {
      await file.close();
    },
  });
}

/** The `[from, to)` runs of `chunk` to write: all but its HOLE_BYTES pieces of zeros (a memcmp each). */
function dataRuns(chunk: Uint8Array): [number, number][] {
  const runs: [number, number][] = [];
  let start = -1;
  for (let at = 0; at < chunk.byteLength; at += HOLE_BYTES) {
    const zeros = filledWith(chunk.subarray(at, at + HOLE_BYTES)) === 0;
    if (zeros && start >= 0) {
      runs.push([start, at]);
      start = -1;
    } else if (!zeros && start < 0) {
      start = at;
    }
  }
  if (start >= 0) runs.push([start, chunk.byteLength]);
  return runs;
}
