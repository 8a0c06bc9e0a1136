/**
 * A resource compressed on the way (TRANSIT_ENCODING, see driver/resource.ts). What
 * a client sent so: the driver reads it as it was, and the client hears how far the
 * driver has read, since the client itself reads far ahead of what it sends. What
 * the driver writes to a client that takes it so (a dump): packed piece by piece
 * (transit-pack.ts).
 */
import type { ByteStream } from "../driver/byte-stream.ts";
import { unpackTransit } from "../driver/transit-unpack.ts";
import { ReadProgress } from "./read-progress.ts";
import { transitPacker } from "../driver/transit-pack.ts";

/**
 * `[ours, theirs]` of a resource's pipe, with `theirs.readable` (what the driver
 * reads) decompressed and counted, and `ours` (towards the client) carrying the count.
 */
export function undoTransit([ours, theirs]: [ByteStream, ByteStream]): [ByteStream, ByteStream] {
  const progress = new ReadProgress();
  const reader = unpackTransit(theirs.readable).getReader();
  const readable = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await reader.read();
        if (done) {
          progress.end();
          controller.close();
        } else {
          progress.add(value.byteLength);
          controller.enqueue(value);
        }
      } catch (e) {
        controller.error(e);
      }
    },
    cancel: (reason) => reader.cancel(reason),
  }, { highWaterMark: 0 });
  return [{ ...ours, notices: progress.notices }, { ...theirs, readable }];
}

/** `[ours, theirs]` of a resource's pipe, with what the driver writes into `theirs` going to the client as zstd. */
export function packTransit([ours, theirs]: [ByteStream, ByteStream]): [ByteStream, ByteStream] {
  const packer = transitPacker();
  // Errors go both ways along the pipe: a client gone fails the driver's next write,
  // a driver that aborts ends the client's stream with its error.
  packer.readable.pipeTo(theirs.writable).catch(() => {});
  return [ours, { ...theirs, writable: packer.writable }];
}
