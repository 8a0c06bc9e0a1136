/**
 * Content encodings of resources, as upstream names them (gzip, xz, bz2, zstd):
 * recognising compressed data by its first bytes, and the streams that undo or
 * apply an encoding. Bun's web streams do gzip and zstd; xz and bz2 are only
 * recognised, so they can be handed to a peer that decompresses them.
 */
import { InvalidArgumentError } from "./errors.ts";

export type Encoding = "gzip" | "xz" | "bz2" | "zstd";

const SIGNATURES: [Encoding, number[]][] = [
  ["gzip", [0x1f, 0x8b, 0x08]],
  ["xz", [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
  ["bz2", [0x42, 0x5a, 0x68]],
  ["zstd", [0x28, 0xb5, 0x2f, 0xfd]],
];

/** Enough leading bytes to tell every known encoding apart. */
export const SIGNATURE_BYTES = 6;

/** Encodings this process can compress and decompress. */
export const CODECS: ReadonlySet<string> = new Set<Encoding>(["gzip", "zstd"]);

/** The encoding whose magic bytes `head` starts with, if any. */
export function detectEncoding(head: Uint8Array): Encoding | undefined {
  for (const [encoding, magic] of SIGNATURES) {
    if (head.byteLength >= magic.length && magic.every((b, i) => head[i] === b)) return encoding;
  }
  return undefined;
}

function requireCodec(encoding: string): "gzip" | "zstd" {
  if (!CODECS.has(encoding)) {
    throw new InvalidArgumentError(`cannot handle '${encoding}' data here (known: ${[...CODECS].join(", ")})`);
  }
  return encoding as "gzip" | "zstd";
}

/**
 * `data` with `encoding` undone. A corrupt input ends the stream with an error
 * that names the encoding instead of the codec's terse message.
 */
export function decode(data: ReadableStream<Uint8Array>, encoding: string): ReadableStream<Uint8Array> {
  const inflate = new DecompressionStream(requireCodec(encoding)) as unknown as TransformStream<Uint8Array, Uint8Array>;
  const reader = data.pipeThrough(inflate).getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await reader.read();
        if (done) controller.close();
        else controller.enqueue(value);
      } catch (e) {
        controller.error(new InvalidArgumentError(`the ${encoding} data is corrupt or truncated: ${(e as Error).message}`));
      }
    },
    cancel: (reason) => reader.cancel(reason),
  }, { highWaterMark: 0 });
}

/** A transform that applies `encoding` (gzip or zstd). */
export function encoder(encoding: string): TransformStream<Uint8Array, Uint8Array> {
  return new CompressionStream(requireCodec(encoding)) as unknown as TransformStream<Uint8Array, Uint8Array>;
}

/**
 * Reads at least `count` bytes (fewer if the data is shorter) without losing them:
 * returns those bytes and a stream that yields everything, from the first byte.
 */
export async function peek(data: ReadableStream<Uint8Array>, count = SIGNATURE_BYTES): Promise<[Uint8Array, ReadableStream<Uint8Array>]> {
  const reader = data.getReader();
  const head: Uint8Array[] = [];
  let have = 0;
  let ended = false;
  while (have < count) {
    const { done, value } = await reader.read();
    if (done) {
      ended = true;
      break;
    }
    head.push(value);
    have += value.byteLength;
  }
  const joined = new Uint8Array(have);
  let at = 0;
  for (const c of head) {
    joined.set(c, at);
    at += c.byteLength;
  }
  const replay = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const c of head) controller.enqueue(c);
      if (ended) controller.close();
    },
    async pull(controller) {
      if (ended) return;
      const { done, value } = await reader.read();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    cancel: (reason) => reader.cancel(reason),
  }, { highWaterMark: 0 });
  return [joined, replay];
}
