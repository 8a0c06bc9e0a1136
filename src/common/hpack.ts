/**
 * HPACK (RFC 7541), as much as a client of our own needs (h2-connection.ts): a full
 * decoder, since a server may index, Huffman-code and resize its table as it likes
 * (Bun's and grpcio's both do), and an encoder that only writes literals, which every
 * decoder must take. Header strings are kept as Latin-1, one character per octet, as
 * HTTP/2 defines them as octets.
 */

export class HpackError extends Error {}

/** RFC 7541 Appendix A: index 1 is the first entry. */
const STATIC_TABLE: readonly (readonly [string, string])[] = [
  [":authority", ""], [":method", "GET"], [":method", "POST"], [":path", "/"], [":path", "/index.html"],
  [":scheme", "http"], [":scheme", "https"], [":status", "200"], [":status", "204"], [":status", "206"],
  [":status", "304"], [":status", "400"], [":status", "404"], [":status", "500"], ["accept-charset", ""],
  ["accept-encoding", "gzip, deflate"], ["accept-language", ""], ["accept-ranges", ""], ["accept", ""],
  ["access-control-allow-origin", ""], ["age", ""], ["allow", ""], ["authorization", ""], ["cache-control", ""],
  ["content-disposition", ""], ["content-encoding", ""], ["content-language", ""], ["content-length", ""],
  ["content-location", ""], ["content-range", ""], ["content-type", ""], ["cookie", ""], ["date", ""], ["etag", ""],
  ["expect", ""], ["expires", ""], ["from", ""], ["host", ""], ["if-match", ""], ["if-modified-since", ""],
  ["if-none-match", ""], ["if-range", ""], ["if-unmodified-since", ""], ["last-modified", ""], ["link", ""],
  ["location", ""], ["max-forwards", ""], ["proxy-authenticate", ""], ["proxy-authorization", ""], ["range", ""],
  ["referer", ""], ["refresh", ""], ["retry-after", ""], ["server", ""], ["set-cookie", ""],
  ["strict-transport-security", ""], ["transfer-encoding", ""], ["user-agent", ""], ["vary", ""], ["via", ""],
  ["www-authenticate", ""],
];

/**
 * The Huffman code of RFC 7541 Appendix B is canonical: codes are handed out in
 * order of length, then of symbol, so each symbol's code length is all it takes to
 * rebuild it. Symbol 256 is EOS. hpack.test.ts checks the lengths make a complete
 * code and decode what Bun's own HPACK encoder sends for every octet.
 */
export const HUFFMAN_LENGTHS: Readonly<Record<number, readonly number[]>> = {
  5: [48, 49, 50, 97, 99, 101, 105, 111, 115, 116],
  6: [32, 37, 45, 46, 47, 51, 52, 53, 54, 55, 56, 57, 61, 65, 95, 98, 100, 102, 103, 104, 108, 109, 110, 112, 114, 117],
  7: [58, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86, 87, 89, 106, 107, 113, 118, 119, 120, 121, 122],
  8: [38, 42, 44, 59, 88, 90],
  10: [33, 34, 40, 41, 63],
  11: [39, 43, 124],
  12: [35, 62],
  13: [0, 36, 64, 91, 93, 126],
  14: [94, 125],
  15: [60, 96, 123],
  19: [92, 195, 208],
  20: [128, 130, 131, 162, 184, 194, 224, 226],
  21: [153, 161, 167, 172, 176, 177, 179, 209, 216, 217, 227, 229, 230],
  22: [129, 132, 133, 134, 136, 146, 154, 156, 160, 163, 164, 169, 170, 173, 178, 181, 185, 186, 187, 189, 190, 196, 198, 228, 232, 233],
  23: [1, 135, 137, 138, 139, 140, 141, 143, 147, 149, 150, 151, 152, 155, 157, 158, 165, 166, 168, 174, 175, 180, 182, 183, 188, 191, 197, 231, 239],
  24: [9, 142, 144, 145, 148, 159, 171, 206, 215, 225, 236, 237],
  25: [199, 207, 234, 235],
  26: [192, 193, 200, 201, 202, 205, 210, 213, 218, 219, 238, 240, 242, 243, 255],
  27: [203, 204, 211, 212, 214, 221, 222, 223, 241, 244, 245, 246, 247, 248, 250, 251, 252, 253, 254],
  28: [2, 3, 4, 5, 6, 7, 8, 11, 12, 14, 15, 16, 17, 18, 19, 20, 21, 23, 24, 25, 26, 27, 28, 29, 30, 31, 127, 220, 249],
  30: [10, 13, 22, 256],
};

const EOS = 256;

/** For each code length: the first code of that length, and where its symbols start in `symbols`. */
interface Canonical {
  first: number[];
  start: number[];
  count: number[];
  symbols: number[];
}

let canonical: Canonical | undefined;

// Plain arrays and index loops throughout: a `j` command runs this once, in the
// interpreter, where typed-array builtins and iterators cost milliseconds.
function huffmanTables(): Canonical {
  if (canonical) return canonical;
  const first: number[] = [];
  const start: number[] = [];
  const count: number[] = [];
  const symbols: number[] = [];
  let code = 0;
  for (let len = 0; len <= 30; len++) {
    const group = HUFFMAN_LENGTHS[len] ?? [];
    if (len > 0) code <<= 1;
    first.push(code);
    start.push(symbols.length);
    count.push(group.length);
    for (let i = 0; i < group.length; i++) symbols.push(group[i]!);
    code += group.length;
  }
  canonical = { first, start, count, symbols };
  return canonical;
}

/** Decodes a Huffman-coded string (RFC 7541 5.2) to Latin-1. */
export function huffmanDecode(bytes: Uint8Array): string {
  const { first, start, count, symbols } = huffmanTables();
  const out: number[] = [];
  let code = 0;
  let len = 0;
  for (let at = 0; at < bytes.length; at++) {
    const byte = bytes[at]!;
    for (let bit = 7; bit >= 0; bit--) {
      code = (code << 1) | ((byte >> bit) & 1);
      len++;
      const offset = code - first[len]!;
      if (offset >= 0 && offset < count[len]!) {
        const symbol = symbols[start[len]! + offset]!;
        if (symbol === EOS) throw new HpackError("a Huffman string holds EOS");
        out.push(symbol);
        code = 0;
        len = 0;
      } else if (len >= 30) {
        throw new HpackError("a Huffman string holds a code that is not in the table");
      }
    }
  }
  // The padding is the most significant bits of EOS (all ones), at most 7 of them.
  if (len > 7 || code !== (1 << len) - 1) throw new HpackError("a Huffman string ends with bad padding");
  return latin1(out);
}

/** Reads HPACK integers and strings from one header block. */
class Reader {
  pos = 0;
  constructor(readonly bytes: Uint8Array) {}

  get done(): boolean {
    return this.pos >= this.bytes.length;
  }

  peek(): number {
    return this.bytes[this.pos]!;
  }

  /** An integer with an N-bit prefix (RFC 7541 5.1), starting at the current octet. */
  integer(prefixBits: number): number {
    const max = (1 << prefixBits) - 1;
    let value = this.byte() & max;
    if (value < max) return value;
    let shift = 0;
    for (;;) {
      const b = this.byte();
      value += (b & 0x7f) * 2 ** shift;
      shift += 7;
      if (!(b & 0x80)) break;
      if (shift > 28) throw new HpackError("an integer is too large");
    }
    return value;
  }

  string(): string {
    const huffman = (this.peek() & 0x80) !== 0;
    const length = this.integer(7);
    if (this.pos + length > this.bytes.length) throw new HpackError("a string runs past the end of the header block");
    const raw = this.bytes.subarray(this.pos, this.pos + length);
    this.pos += length;
    return huffman ? huffmanDecode(raw) : latin1(raw);
  }

  private byte(): number {
    if (this.pos >= this.bytes.length) throw new HpackError("the header block ends inside a field");
    return this.bytes[this.pos++]!;
  }
}

/** Octets as a string of one character each; in pieces, as a spread of very many arguments overflows the stack. */
function latin1(octets: Uint8Array | number[]): string {
  let s = "";
  for (let i = 0; i < octets.length; i += 4096) s += String.fromCharCode(...octets.slice(i, i + 4096));
  return s;
}

/** One connection's decoding context: the dynamic table lives as long as the connection. */
export class HpackDecoder {
  /** Newest first, as indices count them. */
  private readonly dynamic: [string, string][] = [];
  private size = 0;
  private maxSize: number;

  /** `limit` is the SETTINGS_HEADER_TABLE_SIZE this side advertised (4096 unless it said otherwise). */
  constructor(private readonly limit = 4096) {
    this.maxSize = limit;
  }

  decode(block: Uint8Array): [string, string][] {
    const r = new Reader(block);
    const fields: [string, string][] = [];
    while (!r.done) {
      const b = r.peek();
      if (b & 0x80) {
        // Indexed field.
        fields.push(this.entry(r.integer(7)));
      } else if (b & 0x40) {
        // Literal with incremental indexing.
        const field = this.literal(r, 6);
        this.add(field);
        fields.push(field);
      } else if (b & 0x20) {
        const size = r.integer(5);
        if (size > this.limit) throw new HpackError(`a table size update to ${size} exceeds the ${this.limit} allowed`);
        this.maxSize = size;
        this.evict(0);
      } else {
        // Literal without indexing (0000) or never indexed (0001): both 4-bit prefixes.
        fields.push(this.literal(r, 4));
      }
    }
    return fields;
  }

  private literal(r: Reader, prefixBits: number): [string, string] {
    const index = r.integer(prefixBits);
    const name = index === 0 ? r.string() : this.entry(index)[0];
    return [name, r.string()];
  }

  private entry(index: number): [string, string] {
    if (index === 0) throw new HpackError("index 0 is not a header field");
    if (index <= STATIC_TABLE.length) return STATIC_TABLE[index - 1] as [string, string];
    const field = this.dynamic[index - STATIC_TABLE.length - 1];
    if (!field) throw new HpackError(`index ${index} is past the end of the header table`);
    return field;
  }

  private add(field: [string, string]): void {
    const size = entrySize(field);
    this.evict(size);
    // An entry larger than the whole table empties it and is not kept (RFC 7541 4.4).
    if (size > this.maxSize) return;
    this.dynamic.unshift(field);
    this.size += size;
  }

  private evict(room: number): void {
    while (this.dynamic.length && this.size + room > this.maxSize) {
      this.size -= entrySize(this.dynamic.pop()!);
    }
  }
}

/** An entry's size as the table counts it (RFC 7541 4.1): its octets and 32 more. */
function entrySize([name, value]: [string, string]): number {
  return name.length + value.length + 32;
}

function pushInteger(out: number[], value: number, prefixBits: number, flags: number): void {
  const max = (1 << prefixBits) - 1;
  if (value < max) {
    out.push(flags | value);
    return;
  }
  out.push(flags | max);
  value -= max;
  while (value >= 0x80) {
    out.push((value % 0x80) | 0x80);
    value = Math.floor(value / 0x80);
  }
  out.push(value);
}

function pushString(out: number[], s: string): void {
  pushInteger(out, s.length, 7, 0);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0xff) throw new HpackError(`a header holds a character that is not one octet: ${JSON.stringify(s)}`);
    out.push(c);
  }
}

/**
 * A header block of literals without indexing and with literal names: no table
 * state on either side, so nothing this side sends can go out of step with the
 * peer. Names must be lower case, as HTTP/2 requires.
 */
export function encodeHeaders(fields: readonly (readonly [string, string])[]): Uint8Array {
  const out: number[] = [];
  for (const [name, value] of fields) {
    out.push(0);
    pushString(out, name);
    pushString(out, value);
  }
  return Uint8Array.from(out);
}
