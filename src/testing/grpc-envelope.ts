/** Bytes as the frame decoders' tests build them: joined chunks, and a gRPC length-prefixed message. */

export const concat = (parts: Uint8Array[]): Uint8Array => new Uint8Array(Buffer.concat(parts));

/** `msg` behind gRPC's 5-byte prefix: the flags byte (1 = compressed), then its length, big-endian. */
export function envelope(msg: Uint8Array, flags = 0): Uint8Array {
  const head = new Uint8Array(5);
  head[0] = flags;
  new DataView(head.buffer).setUint32(1, msg.byteLength);
  return concat([head, msg]);
}
