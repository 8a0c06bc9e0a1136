/**
 * Content encodings of resources, as upstream names them (gzip, xz, bz2, zstd):
 * recognising compressed data by its first bytes, and the streams that undo or
 * apply an encoding. Bun's web streams do gzip and zstd; xz and bz2 go through the
 * system's programs (tool-codec.ts). Both the exporter (what it accepts in the
 * resource negotiation) and the client (what it does itself when declined) use
 * these, so every driver gets the same four formats.
 */
import { InvalidArgumentError } from "./errors.ts";
import { isToolEncoding, missingTool, throughTool } from "./tool-codec.ts";

export type Encoding = "gzip" | "xz" | "bz2" | "zstd";

const SIGNATURES: [Encoding, number[]][] = [
  ["gzip", [0x1f, 0x8b, 0x08]],
  ["xz", [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
  ["bz2", [0x42, 0x5a, 0x68]],
  ["zstd", [0x28, 0xb5, 0x2f, 0xfd]],
];

/** Enough leading bytes to tell every known encoding apart. */
export const SIGNATURE_BYTES = 6;

/**
 * Encodings this process compresses and decompresses: all of upstream's four, xz and
 * bz2 provided their program is installed (see {@link codecMissing}).
 */
export const CODECS: ReadonlySet<string> = new Set<Encoding>(["gzip", "zstd", "xz", "bz2"]);

/** The encoding whose magic bytes `head` starts with, if any. */
export function detectEncoding(head: Uint8Array): Encoding | undefined {
  for (const [encoding, magic] of SIGNATURES) {
    if (head.byteLength >= magic.length && magic.every((b, i) => head[i] === b)) return encoding;
  }
  return undefined;
}

const unknownCodec = (encoding: string) => new InvalidArgumentError(`cannot handle '${encoding}' data here (known: ${[...CODECS].join(", ")})`);

function requireCodec(encoding: string): Encoding {
  if (!CODECS.has(encoding)) throw unknownCodec(encoding);
  return encoding as Encoding;
}

/**
 * Why this machine cannot code `encoding` (its program is missing, or the encoding
 * is unknown), or undefined when it can. The exporter asks before a driver starts on
 * a resource, so the driver fails before it touches its storage.
 */
export function codecMissing(encoding: string): Error | undefined {
  if (!CODECS.has(encoding)) return unknownCodec(encoding);
  return isToolEncoding(encoding) ? missingTool(encoding) : undefined;
}

/**
 * `data` with `encoding` undone, streaming. A corrupt or truncated input ends the
 * stream with an error that names the encoding (never with a normal end); for xz
 * and bz2 a missing program errors it, naming the package to install.
 */
export function decode(data: ReadableStream<Uint8Array>, encoding: string): ReadableStream<Uint8Array> {
  const codec = requireCodec(encoding);
  if (isToolEncoding(codec)) return throughTool(data, codec, "decode");
  const inflate = new DecompressionStream(codec) as unknown as TransformStream<Uint8Array, Uint8Array>;
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

/** A transform that applies `encoding`: write plain data, read it encoded. */
export function encoder(encoding: string): { writable: WritableStream<Uint8Array>; readable: ReadableStream<Uint8Array> } {
  const codec = requireCodec(encoding);
  if (isToolEncoding(codec)) {
    const plain = new TransformStream<Uint8Array, Uint8Array>();
    return { writable: plain.writable, readable: throughTool(plain.readable, codec, "encode") };
  }
  return new CompressionStream(codec) as unknown as TransformStream<Uint8Array, Uint8Array>;
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
