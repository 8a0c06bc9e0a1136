/**
 * A resource a client sent compressed on the way (TRANSIT_ENCODING, see
 * driver/resource.ts): the driver reads it as it was, and the client hears how far
 * the driver has read, since the client itself reads far ahead of what it sends.
 */
import type { ByteStream } from "../driver/byte-stream.ts";
import { decode } from "../driver/encoding.ts";
import { TRANSIT_ENCODING } from "../driver/resource.ts";
import { ReadProgress } from "./read-progress.ts";

/**
 * `[ours, theirs]` of a resource's pipe, with `theirs.readable` (what the driver
 * reads) decompressed and counted, and `ours` (towards the client) carrying the count.
 */
export function undoTransit([ours, theirs]: [ByteStream, ByteStream]): [ByteStream, ByteStream] {
  const progress = new ReadProgress();
  const reader = decode(theirs.readable, TRANSIT_ENCODING).getReader();
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
