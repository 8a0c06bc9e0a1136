/**
 * TFTP packets (RFC 1350) and the option extension (RFC 2347): what a read request
 * carries, and the replies a read-only server sends.
 */

export const Opcode = { RRQ: 1, WRQ: 2, DATA: 3, ACK: 4, ERROR: 5, OACK: 6 } as const;

/** The RFC 1350 error codes this server sends. */
export const ErrorCode = {
  NOT_DEFINED: 0,
  FILE_NOT_FOUND: 1,
  ACCESS_VIOLATION: 2,
  ILLEGAL_OPERATION: 4,
  UNKNOWN_TID: 5,
} as const;

export type Mode = "octet" | "netascii";

export interface ReadRequest {
  filename: string;
  mode: Mode;
  /** Option names in lower case, values as sent. */
  options: Map<string, string>;
}

export class MalformedPacket extends Error {}

export function opcodeOf(packet: Uint8Array): number {
  return packet.byteLength >= 2 ? (packet[0]! << 8) | packet[1]! : 0;
}

/** Splits the NUL-terminated strings of a request after the opcode. */
function strings(packet: Uint8Array): string[] {
  const out: string[] = [];
  let start = 2;
  for (let i = 2; i < packet.byteLength; i++) {
    if (packet[i] === 0) {
      out.push(new TextDecoder().decode(packet.subarray(start, i)));
      start = i + 1;
    }
  }
  if (start !== packet.byteLength) throw new MalformedPacket("the request does not end with a NUL byte");
  return out;
}

/** Parses an RRQ; throws MalformedPacket for anything that is not one. */
export function parseReadRequest(packet: Uint8Array): ReadRequest {
  const parts = strings(packet);
  if (parts.length < 2 || parts.length % 2 !== 0) throw new MalformedPacket("expected filename, mode and option pairs");
  const [filename, rawMode] = parts as [string, string];
  if (filename === "") throw new MalformedPacket("empty file name");
  const mode = rawMode.toLowerCase();
  if (mode !== "octet" && mode !== "netascii") throw new MalformedPacket(`transfer mode '${rawMode}' is not supported (octet or netascii)`);
  const options = new Map<string, string>();
  for (let i = 2; i < parts.length; i += 2) options.set(parts[i]!.toLowerCase(), parts[i + 1]!);
  return { filename, mode, options };
}

export function dataPacket(block: number, data: Uint8Array): Uint8Array {
  const p = new Uint8Array(4 + data.byteLength);
  p[1] = Opcode.DATA;
  p[2] = (block >> 8) & 0xff;
  p[3] = block & 0xff;
  p.set(data, 4);
  return p;
}

export function errorPacket(code: number, message: string): Uint8Array {
  const text = new TextEncoder().encode(message);
  const p = new Uint8Array(5 + text.byteLength);
  p[1] = Opcode.ERROR;
  p[3] = code;
  p.set(text, 4);
  return p;
}

export function oackPacket(options: Map<string, string>): Uint8Array {
  const body = [...options].flatMap(([k, v]) => [k, v]).map((s) => `${s}\0`).join("");
  const text = new TextEncoder().encode(body);
  const p = new Uint8Array(2 + text.byteLength);
  p[1] = Opcode.OACK;
  p.set(text, 2);
  return p;
}

/** The block number an ACK acknowledges, or undefined for any other packet. */
export function ackedBlock(packet: Uint8Array): number | undefined {
  if (packet.byteLength < 4 || opcodeOf(packet) !== Opcode.ACK) return undefined;
  return (packet[2]! << 8) | packet[3]!;
}

/** The code and message of an ERROR packet, or undefined for any other packet. */
export function parseError(packet: Uint8Array): { code: number; message: string } | undefined {
  if (packet.byteLength < 4 || opcodeOf(packet) !== Opcode.ERROR) return undefined;
  const end = packet.indexOf(0, 4);
  return { code: (packet[2]! << 8) | packet[3]!, message: new TextDecoder().decode(packet.subarray(4, end === -1 ? undefined : end)) };
}

/**
 * Netascii (RFC 764 as RFC 1350 uses it): LF becomes CR LF and a bare CR becomes
 * CR NUL. Stateless per byte, so chunks convert independently.
 */
export function toNetascii(chunk: Uint8Array): Uint8Array {
  let extra = 0;
  for (const b of chunk) if (b === 0x0a || b === 0x0d) extra++;
  if (extra === 0) return chunk;
  const out = new Uint8Array(chunk.byteLength + extra);
  let j = 0;
  for (const b of chunk) {
    if (b === 0x0a) {
      out[j++] = 0x0d;
      out[j++] = 0x0a;
    } else if (b === 0x0d) {
      out[j++] = 0x0d;
      out[j++] = 0x00;
    } else {
      out[j++] = b;
    }
  }
  return out;
}
