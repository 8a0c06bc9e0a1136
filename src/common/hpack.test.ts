import { expect, test } from "bun:test";
import * as http2 from "node:http2";
import * as net from "node:net";
import { h2Frame } from "../testing/h2-frames.ts";
import { encodeHeaders, HpackDecoder, HpackError, HUFFMAN_LENGTHS, huffmanDecode } from "./hpack.ts";

const hex = (s: string) => Uint8Array.from(s.replace(/\s+/g, "").match(/../g)!.map((b) => parseInt(b, 16)));

test("the Huffman code lengths give every symbol, EOS included, once, and make a complete code", () => {
  const symbols = Object.values(HUFFMAN_LENGTHS).flat().sort((a, b) => a - b);
  expect(symbols).toEqual(Array.from({ length: 257 }, (_, i) => i));
  // Kraft's sum is exactly 1 for a complete prefix code: in units of 2^-30, the longest length.
  const sum = Object.entries(HUFFMAN_LENGTHS).reduce((s, [len, group]) => s + group.length * 2 ** (30 - Number(len)), 0);
  expect(sum).toBe(2 ** 30);
});

test("RFC 7541's examples: requests without and with Huffman coding, through one dynamic table each", () => {
  // Appendix C.3 (literals) and C.4 (the same requests Huffman-coded).
  for (const blocks of [
    ["828684410f7777772e6578616d706c652e636f6d", "828684be58086e6f2d6361636865", "828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565"],
    ["828684418cf1e3c2e5f23a6ba0ab90f4ff", "828684be5886a8eb10649cbf", "828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf"],
  ]) {
    const d = new HpackDecoder();
    expect(d.decode(hex(blocks[0]!))).toEqual([[":method", "GET"], [":scheme", "http"], [":path", "/"], [":authority", "www.example.com"]]);
    expect(d.decode(hex(blocks[1]!))).toEqual([[":method", "GET"], [":scheme", "http"], [":path", "/"], [":authority", "www.example.com"], ["cache-control", "no-cache"]]);
    expect(d.decode(hex(blocks[2]!))).toEqual([[":method", "GET"], [":scheme", "https"], [":path", "/index.html"], [":authority", "www.example.com"], ["custom-key", "custom-value"]]);
  }
});

test("the dynamic table evicts its oldest entries to stay within its size, and follows a size update", () => {
  const indexed = (name: string, value: string) => [0x40, name.length, ...Buffer.from(name), value.length, ...Buffer.from(value)];
  // Each entry is 32 + 2 + 2 = 36 octets: a 100-octet table holds two.
  const d = new HpackDecoder(100);
  d.decode(Uint8Array.from([...indexed("k1", "v1"), ...indexed("k2", "v2"), ...indexed("k3", "v3")]));
  // Index 62 is the newest (k3), 63 the one before; k1 is gone.
  expect(d.decode(Uint8Array.from([0x80 | 62, 0x80 | 63]))).toEqual([["k3", "v3"], ["k2", "v2"]]);
  expect(() => d.decode(Uint8Array.from([0x80 | 64]))).toThrow(HpackError);
  // A size update to 40 keeps one entry; one past what we allowed is refused.
  expect(d.decode(Uint8Array.from([0x20 | 31, 9, 0x80 | 62]))).toEqual([["k3", "v3"]]);
  expect(() => d.decode(Uint8Array.from([0x80 | 63]))).toThrow("past the end");
  expect(() => d.decode(Uint8Array.from([0x20 | 31, 70]))).toThrow("exceeds the 100 allowed");
});

test("malformed blocks and strings are an HpackError, never a wrong header", () => {
  const d = new HpackDecoder();
  expect(() => d.decode(Uint8Array.from([0x80]))).toThrow("index 0");
  expect(() => d.decode(Uint8Array.from([0x00, 0x05, 0x61]))).toThrow("runs past the end");
  expect(() => d.decode(Uint8Array.from([0x0f]))).toThrow("ends inside a field");
  expect(() => d.decode(Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]))).toThrow("too large");
  // 'a' is 00011 (5 bits): padded with zeros instead of EOS's ones.
  expect(() => huffmanDecode(Uint8Array.from([0b00011000]))).toThrow("bad padding");
  // More than 7 bits of padding.
  expect(() => huffmanDecode(Uint8Array.from([0b00011111, 0xff]))).toThrow("bad padding");
  // EOS itself (30 ones) inside a string.
  expect(() => huffmanDecode(Uint8Array.from([0xff, 0xff, 0xff, 0xfc]))).toThrow("EOS");
  expect(huffmanDecode(Uint8Array.from([0b00011111]))).toBe("a");
});

test("encodeHeaders writes literals any decoder takes, and refuses characters wider than an octet", () => {
  const fields: [string, string][] = [[":path", "/x"], ["x-long", "v".repeat(300)], ["x-latin1", "caf\u00e9"]];
  expect(new HpackDecoder().decode(encodeHeaders(fields))).toEqual(fields);
  expect(() => encodeHeaders([["x", "\u20ac"]])).toThrow("not one octet");
});

/**
 * What Bun's own HPACK encoder (node:http2's server) sends: the check that the Huffman
 * table is right for every symbol a header value can carry (node:http2 refuses control
 * characters in values; those rest on the lengths alone). An encoder codes a string
 * only when that makes it shorter, so each symbol rides among 24 'e's (5 bits each).
 */
test("headers from Bun's node:http2 server, Huffman-coded and indexed, decode to what it was given", async () => {
  const codes = [...Array.from({ length: 0x7f - 0x21 }, (_, i) => 0x21 + i), 0x20, ...Array.from({ length: 0x80 }, (_, i) => 0x80 + i)];
  const given: Record<string, string> = Object.fromEntries(codes.map((c) => [`x-${c}`, `${"e".repeat(12)}${String.fromCharCode(c)}${"e".repeat(12)}`]));
  const server = http2.createServer();
  const small = { "x-words": "application/grpc+proto; charset=utf-8" };
  server.on("stream", (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => stream.respond({ ":status": 200, ...(headers[":path"] === "/all" ? given : small) }, { endStream: true }));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  try {
    const port = (server.address() as net.AddressInfo).port;
    const paths = ["/small", "/small", "/all", "/all"];
    const blocks = await headerBlocks(port, paths);
    const d = new HpackDecoder();
    blocks.forEach((block, i) => {
      const fields = Object.fromEntries(d.decode(block));
      for (const [name, value] of Object.entries(paths[i] === "/all" ? given : small)) expect(fields[name]).toBe(value);
    });
    // The second block took its field from the table the first one filled.
    expect(blocks[1]!.byteLength).toBeLessThan(blocks[0]!.byteLength / 4);
    // Every value of the large blocks was Huffman-coded (none went as it is).
    expect(Buffer.from(blocks[2]!).includes(Buffer.from("eeeeeeeeeeee"))).toBe(false);
  } finally {
    server.close();
  }
});

/** Opens a raw h2c connection, requests each path in turn, and returns each response's header block. */
async function headerBlocks(port: number, paths: string[]): Promise<Uint8Array[]> {
  const socket = net.connect(port, "127.0.0.1");
  const frame = h2Frame;
  const request = (i: number) => frame(1, 0x5, 1 + 2 * i, encodeHeaders([[":method", "GET"], [":scheme", "http"], [":authority", "x"], [":path", paths[i]!]]));
  socket.write(Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), frame(4, 0, 0, new Uint8Array(0)), request(0)]));
  const blocks: Uint8Array[] = [];
  let pending = Buffer.alloc(0);
  return new Promise((resolve, reject) => {
    socket.on("error", reject);
    socket.on("data", (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.byteLength >= 9 && pending.byteLength >= 9 + pending.readUIntBE(0, 3)) {
        const length = pending.readUIntBE(0, 3);
        const [type, flags] = [pending[3]!, pending[4]!];
        const payload = pending.subarray(9, 9 + length);
        pending = pending.subarray(9 + length);
        if (type === 4 && !(flags & 1)) socket.write(frame(4, 1, 0, new Uint8Array(0)));
        if (type !== 1) continue;
        expect(flags & 0x4).toBe(0x4); // one frame per block here
        blocks.push(Uint8Array.from(payload));
        if (blocks.length === paths.length) {
          socket.destroy();
          return resolve(blocks);
        }
        socket.write(request(blocks.length));
      }
    });
  });
}

test("a long Huffman string decodes whole", () => {
  // 'a' is 00011: eight of them are 40 bits, five octets; 100 000 of them decode past any argument limit.
  const eight = Uint8Array.of(0b00011000, 0b11000110, 0b00110001, 0b10001100, 0b01100011);
  const bytes = new Uint8Array(5 * 12_500);
  for (let i = 0; i < 12_500; i++) bytes.set(eight, 5 * i);
  expect(huffmanDecode(bytes)).toBe("a".repeat(100_000));
});
