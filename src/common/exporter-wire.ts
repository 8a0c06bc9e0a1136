/**
 * ExporterService's GetReport and DriverCall messages, and google.protobuf.Value,
 * encoded and decoded by hand (field numbers from proto/jumpstarter/v1/jumpstarter.proto
 * and struct.proto), as router-frames.ts is for RouterService's frames. For `j`:
 * a command that runs one call and exits spent a third of its time loading and
 * booting protobuf-es and Connect (see client/exporter-calls.ts). Values mean what
 * driver/value.ts makes of them: the same checks, the same error messages.
 */

/** A DriverInstanceReport's fields, as client-tree.ts reads them (protobuf-es's type has this shape too). */
export interface WireReport {
  uuid: string;
  parentUuid?: string;
  labels: Record<string, string>;
  description?: string;
  methodsDescription: Record<string, string>;
}

const VARINT = 0;
const FIXED64 = 1;
const LENGTH = 2;
const FIXED32 = 5;

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

/** Protobuf bytes as a list of parts, joined once at the end. */
class Writer {
  private parts: Uint8Array[] = [];
  length = 0;

  private push(part: Uint8Array): void {
    this.parts.push(part);
    this.length += part.byteLength;
  }

  varint(n: number): void {
    const bytes: number[] = [];
    while (n >= 0x80) {
      bytes.push((n % 128) | 0x80);
      n = Math.floor(n / 128);
    }
    bytes.push(n);
    this.push(Uint8Array.from(bytes));
  }

  tag(field: number, wire: number): void {
    this.varint(field * 8 + wire);
  }

  bytesField(field: number, bytes: Uint8Array): void {
    this.tag(field, LENGTH);
    this.varint(bytes.byteLength);
    this.push(bytes);
  }

  stringField(field: number, s: string): void {
    this.bytesField(field, utf8.encode(s));
  }

  doubleField(field: number, x: number): void {
    this.tag(field, FIXED64);
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, x, true);
    this.push(b);
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const p of this.parts) {
      out.set(p, at);
      at += p.byteLength;
    }
    return out;
  }
}

/** DriverCallRequest and StreamingDriverCallRequest (the same fields): uuid 1, method 2, args 3. */
export function encodeDriverCall(uuid: string, method: string, args: unknown[]): Uint8Array {
  const w = new Writer();
  if (uuid) w.stringField(1, uuid);
  if (method) w.stringField(2, method);
  args.forEach((a, i) => w.bytesField(3, encodeValue(a, `argument ${i + 1}`)));
  return w.finish();
}

/**
 * `x` as google.protobuf.Value: null_value 1, number_value 2, string_value 3,
 * bool_value 4, struct_value 5 (fields 1: map<string, Value>), list_value 6 (values 1).
 */
export function encodeValue(x: unknown, path = "value"): Uint8Array {
  const w = new Writer();
  if (x === null || x === undefined) {
    w.tag(1, VARINT);
    w.varint(0);
    return w.finish();
  }
  switch (typeof x) {
    case "number":
      if (!Number.isFinite(x)) throw new TypeError(`${path}: ${x} cannot travel as JSON`);
      w.doubleField(2, x);
      return w.finish();
    case "bigint":
      w.doubleField(2, Number(x));
      return w.finish();
    case "string":
      w.stringField(3, x);
      return w.finish();
    case "boolean":
      w.tag(4, VARINT);
      w.varint(x ? 1 : 0);
      return w.finish();
    case "object": {
      if (Array.isArray(x)) {
        const list = new Writer();
        x.forEach((v, i) => list.bytesField(1, encodeValue(v, `${path}[${i}]`)));
        w.bytesField(6, list.finish());
        return w.finish();
      }
      if (x instanceof Date) return encodeValue(x.toISOString());
      if (x instanceof Uint8Array) throw new TypeError(`${path}: bytes cannot travel as JSON; use a byte stream`);
      const source = typeof (x as { toJSON?: unknown }).toJSON === "function" ? (x as { toJSON(): unknown }).toJSON() : x;
      if (source !== x) return encodeValue(source, path);
      const struct = new Writer();
      for (const [k, v] of Object.entries(x)) {
        if (v === undefined) continue;
        const entry = new Writer();
        entry.stringField(1, k);
        entry.bytesField(2, encodeValue(v, `${path}.${k}`));
        struct.bytesField(1, entry.finish());
      }
      w.bytesField(5, struct.finish());
      return w.finish();
    }
    default:
      throw new TypeError(`${path}: a ${typeof x} cannot travel as JSON`);
  }
}

/** A malformed message from the peer. */
export class WireError extends Error {
  override name = "WireError";
}

/** Reads one message's fields in order. */
class Reader {
  at = 0;
  constructor(private readonly buf: Uint8Array, private readonly end = buf.byteLength) {}

  more(): boolean {
    return this.at < this.end;
  }

  varint(): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.at >= this.end) throw new WireError("a message ends inside a varint");
      const b = this.buf[this.at++]!;
      value += (b & 0x7f) * scale;
      if (b < 0x80) return value;
      scale *= 128;
    }
    throw new WireError("a varint longer than 10 bytes");
  }

  /** The next field's number and wire type. */
  tag(): [field: number, wire: number] {
    const t = this.varint();
    return [Math.floor(t / 8), t % 8];
  }

  bytes(): Uint8Array {
    const n = this.varint();
    if (this.at + n > this.end) throw new WireError("a field runs past the end of its message");
    const out = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    return out;
  }

  string(): string {
    return fromUtf8.decode(this.bytes());
  }

  double(): number {
    if (this.at + 8 > this.end) throw new WireError("a message ends inside a double");
    const x = new DataView(this.buf.buffer, this.buf.byteOffset + this.at, 8).getFloat64(0, true);
    this.at += 8;
    return x;
  }

  skip(wire: number): void {
    if (wire === VARINT) this.varint();
    else if (wire === FIXED64) this.at += 8;
    else if (wire === LENGTH) this.bytes();
    else if (wire === FIXED32) this.at += 4;
    else throw new WireError(`a field of wire type ${wire}, which proto3 does not use`);
    if (this.at > this.end) throw new WireError("a field runs past the end of its message");
  }
}

/** google.protobuf.Value as a plain value (the last of its oneof fields wins, as protobuf says). */
export function decodeValue(buf: Uint8Array): unknown {
  const r = new Reader(buf);
  let value: unknown = null;
  while (r.more()) {
    const [field, wire] = r.tag();
    if (field === 1 && wire === VARINT) {
      r.varint();
      value = null;
    } else if (field === 2 && wire === FIXED64) value = r.double();
    else if (field === 3 && wire === LENGTH) value = r.string();
    else if (field === 4 && wire === VARINT) value = r.varint() !== 0;
    else if (field === 5 && wire === LENGTH) value = decodeStruct(r.bytes());
    else if (field === 6 && wire === LENGTH) value = decodeList(r.bytes());
    else r.skip(wire);
  }
  return value;
}

function decodeStruct(buf: Uint8Array): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const r = new Reader(buf);
  while (r.more()) {
    const [field, wire] = r.tag();
    if (field !== 1 || wire !== LENGTH) {
      r.skip(wire);
      continue;
    }
    const entry = new Reader(r.bytes());
    let key = "";
    let value: unknown = null;
    while (entry.more()) {
      const [f, w] = entry.tag();
      if (f === 1 && w === LENGTH) key = entry.string();
      else if (f === 2 && w === LENGTH) value = decodeValue(entry.bytes());
      else entry.skip(w);
    }
    out[key] = value;
  }
  return out;
}

function decodeList(buf: Uint8Array): unknown[] {
  const out: unknown[] = [];
  const r = new Reader(buf);
  while (r.more()) {
    const [field, wire] = r.tag();
    if (field === 1 && wire === LENGTH) out.push(decodeValue(r.bytes()));
    else r.skip(wire);
  }
  return out;
}

/** DriverCallResponse and StreamingDriverCallResponse: the result (field 2), null when absent. */
export function decodeDriverResult(buf: Uint8Array): unknown {
  const r = new Reader(buf);
  let result: unknown = null;
  while (r.more()) {
    const [field, wire] = r.tag();
    if (field === 2 && wire === LENGTH) result = decodeValue(r.bytes());
    else r.skip(wire);
  }
  return result;
}

/** GetReportResponse's reports (field 3); its uuid, labels, endpoints and motd are not needed by `j`. */
export function decodeReports(buf: Uint8Array): WireReport[] {
  const r = new Reader(buf);
  const reports: WireReport[] = [];
  while (r.more()) {
    const [field, wire] = r.tag();
    if (field === 3 && wire === LENGTH) reports.push(decodeReport(r.bytes()));
    else r.skip(wire);
  }
  return reports;
}

/** DriverInstanceReport: uuid 1, parent_uuid 2, labels 3, description 4, methods_description 5. */
function decodeReport(buf: Uint8Array): WireReport {
  const report: WireReport = { uuid: "", labels: {}, methodsDescription: {} };
  const r = new Reader(buf);
  while (r.more()) {
    const [field, wire] = r.tag();
    if (wire !== LENGTH) r.skip(wire);
    else if (field === 1) report.uuid = r.string();
    else if (field === 2) report.parentUuid = r.string();
    else if (field === 3) mapEntry(r.bytes(), report.labels);
    else if (field === 4) report.description = r.string();
    else if (field === 5) mapEntry(r.bytes(), report.methodsDescription);
    else r.skip(wire);
  }
  return report;
}

/** One map<string, string> entry (key 1, value 2) into `into`. */
function mapEntry(buf: Uint8Array, into: Record<string, string>): void {
  const r = new Reader(buf);
  let key = "";
  let value = "";
  while (r.more()) {
    const [field, wire] = r.tag();
    if (field === 1 && wire === LENGTH) key = r.string();
    else if (field === 2 && wire === LENGTH) value = r.string();
    else r.skip(wire);
  }
  into[key] = value;
}
