/**
 * Images the exporter fetches from a URL arrive as they are stored, often
 * compressed; like upstream's flashers we recognise the format by its first bytes
 * and decompress gzip and zstd on the way to the disk. (A client's own file is
 * handled by the resource negotiation instead.)
 */
import { InvalidArgumentError } from "@jumpstarter/driver";

const FORMATS: { name: string; magic: number[]; codec?: "gzip" | "zstd" }[] = [
  { name: "gzip", magic: [0x1f, 0x8b, 0x08], codec: "gzip" },
  { name: "zstd", magic: [0x28, 0xb5, 0x2f, 0xfd], codec: "zstd" },
  { name: "xz", magic: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00] },
  { name: "bz2", magic: [0x42, 0x5a, 0x68] },
];
const HEAD = 6;

/** `data` decompressed if it starts like gzip or zstd; `format` names what was found. */
export async function unpack(data: ReadableStream<Uint8Array>): Promise<{ data: ReadableStream<Uint8Array>; format?: string }> {
  const reader = data.getReader();
  const head: Uint8Array[] = [];
  let seen = 0;
  let ended = false;
  while (seen < HEAD && !ended) {
    const { done, value } = await reader.read();
    if (done) ended = true;
    else {
      head.push(value);
      seen += value.byteLength;
    }
  }
  const first = Buffer.concat(head);
  const whole = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const c of head) controller.enqueue(c);
      if (ended) controller.close();
    },
    async pull(controller) {
      const { done, value } = await reader.read();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    cancel: (reason) => reader.cancel(reason),
  }, { highWaterMark: 0 });
  const format = FORMATS.find((f) => f.magic.every((b, i) => first[i] === b));
  if (!format) return { data: whole };
  if (!format.codec) {
    await whole.cancel();
    throw new InvalidArgumentError(`the image is ${format.name}-compressed, which the exporter cannot decompress: use gzip or zstd, or an uncompressed image`);
  }
  const inflate = new DecompressionStream(format.codec) as unknown as TransformStream<Uint8Array, Uint8Array>;
  return { data: whole.pipeThrough(inflate), format: format.name };
}
