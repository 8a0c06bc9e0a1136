/** The driver runtime end to end over a real socket: calls, errors, streams, resources, report. */
import { afterEach, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { compress } from "../../test/fixtures/disk-image.ts";
import { ExporterStatus } from "../gen/jumpstarter/v1/common_pb.ts";
import { serve, type Served } from "../testing/serve.ts";
import {
  callSignal, Code, DeadlineExceededError, Driver, DriverError, ExporterNotReadyError, exported, exportStream,
  InvalidArgumentError, memoryPipe, MethodNotFoundError, NotImplementedDriverError, readAll, UnavailableError,
  type ByteStream,
} from "./index.ts";
import { parseExporterConfig } from "../common/exporter-config.ts";
import { eventually } from "../common/eventually.ts";
import { METHODS_LABEL } from "./report.ts";

/** Resolves to what a promise rejected with (bun's expect().rejects can hang on gRPC promises). */
const rejection = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e as Error);

class Probe extends Driver {
  static override readonly client = "tests.ProbeClient";
  static override readonly help = { echo: "Return the arguments" };
  /** Resolves when a `forever` call has seen its call signal abort. */
  readonly cancelled = Promise.withResolvers<void>();

  @exported async echo(...args: unknown[]) {
    return args;
  }
  @exported async nothing() {}
  @exported async fail(kind: string) {
    switch (kind) {
      case "invalid": throw new InvalidArgumentError("bad value for x");
      case "type": throw new TypeError("x must be a number");
      case "unimplemented": throw new NotImplementedDriverError("no such feature");
      case "timeout": throw Object.assign(new Error("took too long"), { name: "TimeoutError" });
      case "refused": throw Object.assign(new Error("connect ECONNREFUSED 10.0.0.1:22"), { code: "ECONNREFUSED" });
      case "enoent": throw Object.assign(new Error("ENOENT: no such file, open '/dev/ttyX'"), { code: "ENOENT" });
      default: throw new Error("something odd");
    }
  }
  @exported async *count(n: number) {
    for (let i = 0; i < n; i++) yield { i };
  }
  @exported async *forever() {
    const signal = callSignal();
    yield "started";
    // Waits without yielding: only the call signal can end this.
    await new Promise<void>((r) => signal.addEventListener("abort", () => r(), { once: true }));
    this.cancelled.resolve();
  }
  @exportStream async connect(): Promise<ByteStream> {
    const [ours, theirs] = memoryPipe();
    // Echo, upper-cased, until the client half-closes.
    (async () => {
      const w = ours.writable.getWriter();
      for await (const chunk of ours.readable) await w.write(new TextEncoder().encode(new TextDecoder().decode(chunk).toUpperCase()));
      await w.close();
    })();
    return { ...theirs, metadata: { greeting: "hello" } };
  }
  @exported async digest(handle: unknown) {
    const stream = await this.resource(handle);
    const data = await readAll(stream.readable);
    return { bytes: data.byteLength, sha256: createHash("sha256").update(data).digest("hex") };
  }
  /** Opens a resource and leaves it unread, as a driver busy with its disk does. */
  held?: ByteStream;
  @exported async hold(handle: unknown) {
    this.held = await this.resource(handle);
  }
  /** Writes `text` into a resource, as a dump does. */
  @exported async emit(handle: unknown, text: string) {
    const stream = await this.resource(handle);
    const writer = stream.writable.getWriter();
    await writer.write(new TextEncoder().encode(text));
    await writer.close();
  }
  /** Writes `mib` MiB of a disk image ("disk": random data and zeros) or of random data into a resource, as a dump does; returns their sha256. */
  @exported async spill(handle: unknown, kind: "disk" | "random", mib: number) {
    const stream = await this.resource(handle);
    const writer = stream.writable.getWriter();
    const hash = createHash("sha256");
    for (let i = 0; i < mib * 4; i++) {
      const chunk = new Uint8Array(256 * 1024);
      crypto.getRandomValues(chunk.subarray(0, kind === "disk" ? (i % 4 === 0 ? 4096 : 0) : 65536));
      if (kind === "random") for (let at = 65536; at < chunk.byteLength; at += 65536) crypto.getRandomValues(chunk.subarray(at, at + 65536));
      hash.update(chunk);
      await writer.write(chunk);
    }
    await writer.close();
    return hash.digest("hex");
  }
  notExported() {
    return "secret";
  }
}

let served: Served | undefined;
afterEach(async () => served?.close());

describe("calls", () => {
  test("JSON arguments and results round-trip", async () => {
    served = await serve(new Probe({}));
    const value = [1, 2.5, "x", true, null, { a: [1, { b: "c" }] }, []];
    expect(await served.client.call("echo", ...value)).toEqual(value);
    expect(await served.client.call("nothing")).toBeNull();
  });

  test("streaming calls yield every item", async () => {
    served = await serve(new Probe({}));
    const items = [];
    for await (const x of served.client.streamingCall("count", 3)) items.push(x);
    expect(items).toEqual([{ i: 0 }, { i: 1 }, { i: 2 }]);
  });

  test("leaving a streaming loop cancels the call on the exporter", async () => {
    const probe = new Probe({});
    served = await serve(probe);
    for await (const x of served.client.streamingCall("forever")) {
      expect(x).toBe("started");
      break;
    }
    await probe.cancelled.promise;
  }, 5000);
});

describe("errors map to gRPC codes and back to typed errors", () => {
  const cases: [string, new (...a: any[]) => Error, Code, string][] = [
    ["invalid", InvalidArgumentError, Code.InvalidArgument, "bad value for x"],
    ["type", InvalidArgumentError, Code.InvalidArgument, "x must be a number"],
    ["unimplemented", NotImplementedDriverError, Code.Unimplemented, "no such feature"],
    ["timeout", DeadlineExceededError, Code.DeadlineExceeded, "took too long"],
    ["refused", UnavailableError, Code.Unavailable, "ECONNREFUSED"],
    ["enoent", DriverError, Code.Internal, "no such file"],
    ["other", DriverError, Code.Unknown, "something odd"],
  ];
  for (const [kind, cls, code, message] of cases) {
    test(kind, async () => {
      served = await serve(new Probe({}));
      const e = (await rejection(served.client.call("fail", kind))) as DriverError;
      expect(e).toBeInstanceOf(cls);
      expect(e.code).toBe(code);
      expect(e.message).toContain(message);
    });
  }

  test("only exported methods can be called, each as its kind", async () => {
    served = await serve(new Probe({}));
    const hidden = (await rejection(served.client.call("not_exported"))) as DriverError;
    expect(hidden).toBeInstanceOf(MethodNotFoundError);
    expect(hidden.message).toContain("method not_exported not found on driver Probe");
    const wrongKind = (await rejection(served.client.call("count", 1))) as DriverError;
    expect(wrongKind).toBeInstanceOf(MethodNotFoundError);
    expect(wrongKind.message).toContain("is a streaming call, not a unary call");
  });

  test("calls are refused until the lease is ready", async () => {
    served = await serve(new Probe({}));
    served.session.setStatus(ExporterStatus.AVAILABLE);
    const e = await rejection(served.client.call("nothing"));
    expect(e).toBeInstanceOf(ExporterNotReadyError);
    expect(e!.message).toContain("EXPORTER_STATUS_AVAILABLE".replace("EXPORTER_STATUS_", ""));
  });
});

describe("byte streams and resources", () => {
  test("a byte stream carries data both ways, its metadata and the half-close", async () => {
    served = await serve(new Probe({}));
    const stream = await served.client.stream("connect");
    expect(stream.metadata?.greeting).toBe("hello");
    const writer = stream.writable.getWriter();
    await writer.write(new TextEncoder().encode("abc"));
    await writer.write(new TextEncoder().encode("def"));
    await writer.close();
    expect(new TextDecoder().decode(await readAll(stream.readable))).toBe("ABCDEF");
  });

  test("a client file reaches the driver through a resource handle, byte for byte", async () => {
    served = await serve(new Probe({}));
    const data = crypto.getRandomValues(new Uint8Array(3 * 1024 * 1024 + 17));
    const { handle, done } = await served.client.resource(new Blob([data]).stream());
    expect(handle.kind).toBe("client_stream");
    const result = await served.client.call("digest", handle);
    await done;
    expect(result).toEqual({ bytes: data.byteLength, sha256: createHash("sha256").update(data).digest("hex") });
  });

  test("a resource flows ahead of a driver that is not reading yet, up to a bound", async () => {
    // The client reads its source ahead of what HTTP/2 has taken, and the session
    // takes in megabytes ahead of the driver, so that a driver writing one block
    // to disk does not stop the transfer; backpressure still holds the rest.
    // Random bytes: they go compressed on the way (see below) but do not shrink.
    const probe = new Probe({});
    served = await serve(probe);
    const MiB = 2 ** 20;
    let pulled = 0;
    const source = new ReadableStream<Uint8Array>({
      pull(c) {
        if (pulled >= 64 * MiB) return c.close();
        pulled += 64 * 1024;
        c.enqueue(crypto.getRandomValues(new Uint8Array(64 * 1024)));
      },
    }, { highWaterMark: 0 });
    const transfer = await served.client.resource(source);
    try {
      await served.client.call("hold", transfer.handle);
      // 2 MiB read ahead + 2 MiB of HTTP/2 window + 4 MiB in the session; without the
      // read-ahead and the session's buffer this stopped near 2.5 MiB.
      await eventually(() => expect(pulled).toBeGreaterThanOrEqual(7 * MiB), { timeout: 5000, interval: 20 });
      await Bun.sleep(300);
      expect(pulled).toBeLessThan(16 * MiB);
    } finally {
      transfer.close();
      await probe.held?.readable.cancel().catch(() => {});
    }
  });

  test("raw data to a session reached over a network goes compressed on the way and reaches the driver as it was; progress is what the driver has read", async () => {
    const probe = new Probe({});
    served = await serve(probe);
    const MiB = 2 ** 20;
    // A disk image's worth of zeros, with some random bytes in every MiB.
    const data = new Uint8Array(24 * MiB);
    for (let at = 0; at < data.byteLength; at += MiB) crypto.getRandomValues(data.subarray(at, at + 4096));
    let pulled = 0;
    const source = new ReadableStream<Uint8Array>({
      pull(c) {
        if (pulled >= data.byteLength) return c.close();
        c.enqueue(data.slice(pulled, pulled + 256 * 1024));
        pulled += 256 * 1024;
      },
    }, { highWaterMark: 0 });
    const reported: number[] = [];
    const transfer = await served.client.resource(source, { onProgress: (n) => reported.push(n), transit: true });
    expect(transfer.transit).toBeDefined();
    // While the driver reads nothing, this side reads on (its bytes shrink on the way),
    // and the progress it reports stays where the driver is: nowhere.
    await served.client.call("hold", transfer.handle);
    await eventually(() => expect(pulled).toBeGreaterThanOrEqual(16 * MiB), { timeout: 5000, interval: 20 });
    expect(reported.filter((n) => n > 0)).toEqual([]);
    const got = await readAll(probe.held!.readable);
    await transfer.done;
    expect(createHash("sha256").update(got).digest("hex")).toBe(createHash("sha256").update(data).digest("hex"));
    expect(transfer.transit!.bytes()).toBe(data.byteLength);
    expect(transfer.transit!.compressed()).toBeLessThan(data.byteLength / 20);
    // The exporter told how far its driver had read, ending with all of it.
    await eventually(() => expect(reported.at(-1)).toBe(data.byteLength));
    transfer.close();
  });

  test("what a driver writes for a client over a network (a dump) comes compressed where it shrinks, and arrives as it was; counted as it arrives", async () => {
    served = await serve(new Probe({}));
    for (const kind of ["disk", "random"] as const) {
      const hash = createHash("sha256");
      let bytes = 0;
      const into = new WritableStream<Uint8Array>({
        write(c) {
          hash.update(c);
          bytes += c.byteLength;
        },
      });
      const counted: number[] = [];
      const transfer = await served.client.resource(null, { into, transit: true, onProgress: (n) => counted.push(n) });
      expect(transfer.stream.metadata?.x_jmp_transit_accept_encoding).toBe("zstd");
      const [sha256] = await Promise.all([served.client.call("spill", transfer.handle, kind, 8), transfer.done]);
      transfer.close();
      expect(hash.digest("hex")).toBe(sha256 as string);
      expect(transfer.transit!.bytes()).toBe(8 * 2 ** 20);
      expect(counted.at(-1)).toBe(8 * 2 ** 20);
      if (kind === "disk") expect(transfer.transit!.compressed()).toBeLessThan(bytes / 20);
      // Random data goes in stored frames: a few header bytes per 256 KiB more, no compression.
      else expect(transfer.transit!.compressed()).toBeLessThan(bytes * 1.001);
    }
  });

  test("a dump with an encoding of its own, without transit, or for a local session comes as it is", async () => {
    served = await serve(new Probe({}));
    const sink = () => new WritableStream<Uint8Array>();
    const gz = await served.client.resource(null, { encoding: "gzip", into: sink(), transit: true });
    expect(gz.transit).toBeUndefined();
    expect(gz.stream.metadata?.x_jmp_transit_accept_encoding).toBeUndefined();
    await Promise.all([served.client.call("emit", gz.handle, "x"), gz.done]);
    gz.close();
    const plain = await served.client.resource(null, { into: sink() });
    expect(plain.stream.metadata?.x_jmp_transit_accept_encoding).toBeUndefined();
    await Promise.all([served.client.call("emit", plain.handle, "x"), plain.done]);
    plain.close();
    await served.close();
    served = await serve(new Probe({}), { localFiles: true });
    const local = await served.client.resource(null, { into: sink(), transit: true });
    expect(local.transit).toBeUndefined();
    await Promise.all([served.client.call("emit", local.handle, "x"), local.done]);
    local.close();
  });

  test("data not said to compress, data already compressed, or for a session that reads local files (local mode), goes as it is", async () => {
    const probe = new Probe({});
    served = await serve(probe);
    const plain = await served.client.resource(new Blob([new Uint8Array(1024 * 1024)]).stream());
    expect(plain.transit).toBeUndefined();
    expect(await served.client.call("digest", plain.handle)).toEqual({ bytes: 1024 * 1024, sha256: createHash("sha256").update(new Uint8Array(1024 * 1024)).digest("hex") });
    plain.close();
    const gz = Bun.gzipSync(new Uint8Array(1024 * 1024));
    const compressed = await served.client.resource(new Blob([gz]).stream(), { encoding: "gzip", transit: true });
    expect(compressed.transit).toBeUndefined();
    expect(await served.client.call("digest", compressed.handle)).toEqual({ bytes: 1024 * 1024, sha256: createHash("sha256").update(new Uint8Array(1024 * 1024)).digest("hex") });
    compressed.close();
    await served.close();
    served = await serve(new Probe({}), { localFiles: true });
    const local = await served.client.resource(new Blob([new Uint8Array(1024 * 1024)]).stream(), { transit: true });
    expect(local.transit).toBeUndefined();
    expect(await served.client.call("digest", local.handle)).toEqual({ bytes: 1024 * 1024, sha256: createHash("sha256").update(new Uint8Array(1024 * 1024)).digest("hex") });
    local.close();
  });

  test("a session that reads local files (local mode) reads the named file itself, with progress; the data given is not sent", async () => {
    served = await serve(new Probe({}), { localFiles: true });
    const dir = mkdtempSync(join(tmpdir(), "jmp-local-file-"));
    try {
      const plain = crypto.getRandomValues(new Uint8Array(3 * 1024 * 1024 + 7));
      const path = join(dir, "image.img");
      writeFileSync(path, plain);
      let progress = 0;
      // `data` is not the file: had it been sent, the digest would be of these 3 bytes.
      const transfer = await served.client.resource(new Blob([new Uint8Array([1, 2, 3])]).stream(), { localFile: path, onProgress: (n) => (progress = n) });
      expect(transfer.readByExporter).toBe(true);
      const [result] = await Promise.all([served.client.call("digest", transfer.handle), transfer.done]);
      transfer.close();
      expect(result).toEqual({ bytes: plain.byteLength, sha256: createHash("sha256").update(plain).digest("hex") });
      await eventually(() => expect(progress).toBe(plain.byteLength), { what: "the exporter's last progress notice" });
      // gzip: read and decompressed there.
      writeFileSync(`${path}.gz`, gzipSync(plain));
      const packed = await served.client.resource(null, { localFile: `${path}.gz`, encoding: "gzip" });
      expect({ read: packed.readByExporter, codedBy: packed.codedBy }).toEqual({ read: true, codedBy: "exporter" });
      expect(await served.client.call("digest", packed.handle)).toEqual(result);
      packed.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a session that writes local files (local mode) writes a dump's new empty file itself, sparse, with progress; into gets nothing", async () => {
    served = await serve(new Probe({}), { localFiles: true });
    const dir = mkdtempSync(join(tmpdir(), "jmp-local-target-"));
    try {
      const path = join(dir, "dump.img");
      writeFileSync(path, "");
      let received = 0;
      const into = new WritableStream<Uint8Array>({ write: (c) => void (received += c.byteLength) });
      let progress = 0;
      const transfer = await served.client.resource(null, { into, localFile: path, onProgress: (n) => (progress = n) });
      expect(transfer.writtenByExporter).toBe(true);
      const [sha256] = await Promise.all([served.client.call("spill", transfer.handle, "disk", 8), transfer.done]);
      transfer.close();
      expect(received).toBe(0);
      const written = readFileSync(path);
      expect(written.byteLength).toBe(8 * 2 ** 20);
      expect(createHash("sha256").update(written).digest("hex")).toBe(sha256 as string);
      // 4 KiB of data in every MiB: the zeros around it are holes.
      expect(statSync(path).blocks * 512).toBeLessThan(2 ** 20);
      await eventually(() => expect(progress).toBe(8 * 2 ** 20), { what: "the exporter's last progress notice" });
      // A file that is not new and empty, or not the one named (another inode at the path), is not written there: the bytes come to `into`.
      writeFileSync(path, "old");
      const full = await served.client.resource(null, { into, localFile: path });
      expect(full.writtenByExporter).toBe(false);
      await Promise.all([served.client.call("emit", full.handle, "hello"), full.done]);
      full.close();
      expect({ received, file: readFileSync(path, "utf8") }).toEqual({ received: 5, file: "old" });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a dump's target named by a stale id (the file was replaced meanwhile) is not written by the session", async () => {
    served = await serve(new Probe({}), { localFiles: true });
    const dir = mkdtempSync(join(tmpdir(), "jmp-local-target-"));
    try {
      const path = join(dir, "dump.img");
      writeFileSync(path, "");
      const { dev, ino } = statSync(path);
      rmSync(path);
      writeFileSync(join(dir, "other"), "");
      writeFileSync(path, "");
      expect(statSync(path).ino === ino && statSync(path).dev === dev).toBe(false);
      const chunks: Uint8Array[] = [];
      const portal = (served.client as unknown as { portal: { openStream(r: object, s?: AbortSignal): Promise<ByteStream> } }).portal;
      const stream = await portal.openStream({ kind: "resource", uuid: served.client.uuid, x_jmp_content_encoding: null, x_jmp_local_target: path, x_jmp_local_target_id: `${dev}:${ino}` });
      expect(stream.metadata?.x_jmp_local_target).toBeUndefined();
      const handle = JSON.parse(stream.metadata!.resource!);
      void stream.writable.close();
      const reading = stream.readable.pipeTo(new WritableStream({ write: (c) => void chunks.push(c) }));
      await served.client.call("emit", handle, "to the client");
      await reading;
      expect(Buffer.concat(chunks).toString()).toBe("to the client");
      expect(readFileSync(path, "utf8")).toBe("");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a session that does not read local files (distributed, direct, a network) ignores the path: the data is sent", async () => {
    served = await serve(new Probe({}));
    const dir = mkdtempSync(join(tmpdir(), "jmp-local-file-"));
    try {
      const path = join(dir, "secret.img");
      writeFileSync(path, "the exporter's own file");
      const data = new TextEncoder().encode("what the client sends");
      const transfer = await served.client.resource(new Blob([data]).stream(), { localFile: path });
      expect({ read: transfer.readByExporter, meta: transfer.stream.metadata?.x_jmp_local_file }).toEqual({ read: false, meta: undefined });
      const [result] = await Promise.all([served.client.call("digest", transfer.handle), transfer.done]);
      transfer.close();
      expect(result).toEqual({ bytes: data.byteLength, sha256: createHash("sha256").update(data).digest("hex") });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a path that is relative, missing or a directory is not read: the client streams instead", async () => {
    served = await serve(new Probe({}), { localFiles: true });
    const dir = mkdtempSync(join(tmpdir(), "jmp-local-file-"));
    try {
      const data = new TextEncoder().encode("streamed");
      for (const path of ["relative.img", join(dir, "missing.img"), dir]) {
        const transfer = await served.client.resource(new Blob([data]).stream(), { localFile: path });
        expect({ path, read: transfer.readByExporter }).toEqual({ path, read: false });
        const [result] = await Promise.all([served.client.call("digest", transfer.handle), transfer.done]);
        transfer.close();
        expect(result).toMatchObject({ bytes: data.byteLength });
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("gzip-compressed data is decompressed by the exporter when it accepts the encoding", async () => {
    served = await serve(new Probe({}));
    const plain = new TextEncoder().encode("flash me ".repeat(10_000));
    const { handle, stream } = await served.client.resource(new Blob([gzipSync(plain)]).stream(), { encoding: "gzip" });
    expect(stream.metadata?.x_jmp_accept_encoding).toBe("gzip");
    const result = (await served.client.call("digest", handle)) as { bytes: number };
    expect(result.bytes).toBe(plain.byteLength);
  });

  test("xz and bz2 travel compressed and are decompressed by the exporter for any driver, as upstream negotiates", async () => {
    served = await serve(new Probe({}));
    const plain = crypto.getRandomValues(new Uint8Array(2 * 1024 * 1024 + 5));
    for (const encoding of ["xz", "bz2"] as const) {
      const packed = compress(plain, encoding);
      let sent = 0;
      const transfer = await served.client.resource(new Blob([packed]).stream(), { encoding, onProgress: (n) => (sent = n) });
      expect(transfer.stream.metadata?.x_jmp_accept_encoding).toBe(encoding);
      expect(transfer.handle).toMatchObject({ kind: "client_stream", x_jmp_content_encoding: encoding });
      expect(transfer.codedBy).toBe("exporter");
      const [result] = await Promise.all([served.client.call("digest", transfer.handle), transfer.done]);
      transfer.close();
      expect(result).toEqual({ bytes: plain.byteLength, sha256: createHash("sha256").update(plain).digest("hex") });
      // What crossed the wire is the compressed file.
      expect(sent).toBe(packed.byteLength);
    }
  });

  test("corrupt xz fails the driver's read with the format named, never as a short success", async () => {
    served = await serve(new Probe({}));
    const packed = compress(crypto.getRandomValues(new Uint8Array(1024 * 1024)), "xz");
    const transfer = await served.client.resource(new Blob([packed.subarray(0, packed.byteLength >> 1)]).stream(), { encoding: "xz" });
    const e = await rejection(served.client.call("digest", transfer.handle));
    transfer.close();
    expect(e).toBeInstanceOf(InvalidArgumentError);
    expect(e!.message).toContain("the xz data is corrupt or truncated: Unexpected end of input");
  });

  test("what a driver writes to an xz or bz2 resource (a dump) is compressed by the exporter", async () => {
    served = await serve(new Probe({}));
    const text = "a dumped disk ".repeat(20_000);
    for (const [encoding, program] of [["xz", "xz"], ["bz2", "bzip2"]] as const) {
      const chunks: Uint8Array[] = [];
      const into = new WritableStream<Uint8Array>({ write: (c) => void chunks.push(c) });
      const transfer = await served.client.resource(null, { encoding, into });
      expect(transfer.codedBy).toBe("exporter");
      await Promise.all([served.client.call("emit", transfer.handle, text), transfer.done]);
      transfer.close();
      const file = Buffer.concat(chunks);
      expect(file.byteLength).toBeLessThan(text.length / 10);
      const undone = Bun.spawnSync([program, "-dc"], { stdin: file, stdout: "pipe" });
      expect(undone.exitCode).toBe(0);
      expect(undone.stdout.toString()).toBe(text);
    }
  });

  test("JMP_DISABLE_COMPRESSION=1: the exporter declines xz, and the client decompresses before sending", async () => {
    served = await serve(new Probe({}));
    const plain = new TextEncoder().encode("flash me ".repeat(50_000));
    process.env.JMP_DISABLE_COMPRESSION = "1";
    try {
      const transfer = await served.client.resource(new Blob([compress(plain, "xz")]).stream(), { encoding: "xz" });
      expect(transfer.stream.metadata?.x_jmp_accept_encoding).toBeUndefined();
      expect(transfer.codedBy).toBe("client");
      const [result] = await Promise.all([served.client.call("digest", transfer.handle), transfer.done]);
      transfer.close();
      expect((result as { bytes: number }).bytes).toBe(plain.byteLength);
    } finally {
      delete process.env.JMP_DISABLE_COMPRESSION;
    }
  });

  test("an exporter without the xz program fails the call before the driver reads, naming the package", async () => {
    served = await serve(new Probe({}));
    const transfer = await served.client.resource(new Blob([compress(new Uint8Array(1000), "xz")]).stream(), { encoding: "xz" });
    const PATH = process.env.PATH;
    process.env.PATH = "/nonexistent";
    let e: Error | undefined;
    try {
      e = await rejection(served.client.call("digest", transfer.handle));
    } finally {
      process.env.PATH = PATH;
      transfer.close();
    }
    expect(e).toBeInstanceOf(DriverError);
    expect(e!.message).toContain("xz data needs the 'xz' program, which is missing on");
    expect(e!.message).toContain("install the xz-utils package (apt-get install xz-utils)");
  });

  test("a bad handle is an invalid argument", async () => {
    served = await serve(new Probe({}));
    const e = await rejection(served.client.call("digest", { kind: "client_stream", uuid: "nope" }));
    expect(e).toBeInstanceOf(InvalidArgumentError);
    expect(e!.message).toContain("no resource nope is open on this driver");
  });
});

test("the report tree carries upstream's labels, refs and configured help", async () => {
  const config = parseExporterConfig({
    description: "the bench",
    export: {
      power: { type: "MockPower", description: "main switch", methods_description: { on: "Switch the bench on" } },
      group: { children: { inner: { type: "MockPower" } } },
      alias: { ref: "group.inner" },
    },
  }, "bench.yaml");
  served = await serve(config);
  const { ConnectPortal } = await import("./portal.ts");
  const { sessionConnection } = await import("../client/transport.ts");
  const report = await new ConnectPortal(sessionConnection({ host: served.socket })).getReport();
  const [root, power, group, inner, alias] = report.reports;
  expect(root!.parentUuid).toBeUndefined();
  expect(root!.description).toBe("the bench");
  expect(root!.labels["jumpstarter.dev/client"]).toBe("jumpstarter_driver_composite.client.CompositeClient");
  expect(root!.labels["jumpstarter.dev/name"]).toBeUndefined();
  expect(power!.parentUuid).toBe(root!.uuid);
  expect(power!.labels).toMatchObject({ "jumpstarter.dev/name": "power", "jumpstarter.dev/client": "jumpstarter_driver_power.client.PowerClient", [METHODS_LABEL]: "on,off,read:streaming" });
  expect(power!.description).toBe("main switch");
  expect(power!.methodsDescription).toMatchObject({ on: "Switch the bench on", off: "Power off" });
  expect(inner!.parentUuid).toBe(group!.uuid);
  // A ref reports its target under its own name, with the target's uuid (as upstream).
  expect(alias!.uuid).toBe(inner!.uuid);
  expect(alias!.labels["jumpstarter.dev/name"]).toBe("alias");
  expect(Object.keys(served.client.children)).toEqual(["power", "group", "alias"]);
});
