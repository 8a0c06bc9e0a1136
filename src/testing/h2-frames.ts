/** HTTP/2 frames as the tests of our own client (h2-connection.ts, hpack.ts) write them by hand. */

/** One frame: the 9-byte head (length, type, flags, stream id), then the payload. */
export function h2Frame(type: number, flags: number, id: number, payload: Uint8Array = new Uint8Array(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.byteLength, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(id, 5);
  return Buffer.concat([head, payload]);
}
