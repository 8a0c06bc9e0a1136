import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { closeSync, constants, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync, gzipSync, zstdCompressSync } from "node:zlib";
import { DriverError, InvalidArgumentError } from "@jumpstarter/driver";
import { eventually } from "../../src/common/eventually.ts";
import { serve, type Served } from "../../src/testing/serve.ts";
import { compress, imageData } from "../../test/fixtures/disk-image.ts";
import { failure } from "../testing/failure.ts";
import { StorageMuxFlasherClient } from "./client.ts";
import { ImageStorage } from "./image.ts";

const dir = mkdtempSync(join(tmpdir(), "jmp-image-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let served: Served<StorageMuxFlasherClient> | undefined;
afterEach(async () => {
  await served?.close();
  served = undefined;
});

const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex");

let n = 0;
function file(data: Uint8Array, name = `image-${++n}.img`): string {
  const path = join(dir, name);
  writeFileSync(path, data);
  return path;
}

async function storage(config: Record<string, unknown> = {}) {
  const driver = ImageStorage.create({ path: join(dir, `disk-${++n}.img`), ...config });
  served = await serve<StorageMuxFlasherClient>(driver);
  expect(served.client).toBeInstanceOf(StorageMuxFlasherClient);
  return { driver, client: served.client };
}

/** The error `call` ends with while the exporter finds no programs (no xz, no bzip2) on its PATH. */
async function failureWithoutPrograms(call: () => Promise<unknown>): Promise<Error> {
  const PATH = process.env.PATH;
  process.env.PATH = "/nonexistent";
  try {
    return await failure(call());
  } finally {
    process.env.PATH = PATH;
  }
}

/** What `run` writes to stderr. */
async function stderrOf(run: () => Promise<unknown>): Promise<string> {
  const write = process.stderr.write;
  let text = "";
  process.stderr.write = ((chunk: string | Uint8Array) => {
    text += typeof chunk === "string" ? chunk : Buffer.from(chunk).toString();
    return true;
  }) as typeof process.stderr.write;
  try {
    await run();
  } finally {
    process.stderr.write = write;
  }
  return text;
}

describe("flash", () => {
  test("an image arrives byte for byte, in whole blocks, and the storage ends with the DUT", async () => {
    const { driver, client } = await storage({ block_size: "64K" });
    const data = imageData(3 * 1024 * 1024 + 4097);
    const result = await client.flash(file(data));
    expect(readFileSync(driver.config.path)).toEqual(Buffer.from(data));
    expect(result).toMatchObject({ localBytes: data.byteLength, written: data.byteLength });
    expect(result.compression).toBeUndefined();
    expect(driver.mux).toBe("dut");
  });

  test("an image read from a named pipe arrives whole (the client reads on from where it is, never at an offset)", async () => {
    const { driver, client } = await storage();
    const data = imageData(3 * 1024 * 1024 + 11);
    const fifo = join(dir, `pipe-${++n}`);
    expect(Bun.spawnSync(["mkfifo", fifo]).exitCode).toBe(0);
    const writer = Bun.spawn(["sh", "-c", `cat '${file(data)}' > '${fifo}'`]);
    const result = await client.flash(fifo);
    expect(await writer.exited).toBe(0);
    expect(sha256(readFileSync(driver.config.path))).toBe(sha256(data));
    expect(result).toMatchObject({ localBytes: data.byteLength, written: data.byteLength });
  });

  test("gzip and zstd images are recognised by their first bytes and decompressed by the exporter", async () => {
    const { driver, client } = await storage();
    const data = imageData(2 * 1024 * 1024);
    for (const [packed, name] of [[gzipSync(data), "gzip"], [zstdCompressSync(data), "zstd"]] as const) {
      const result = await client.flash(file(packed, `packed-${name}`));
      expect(result).toMatchObject({ compression: name, codedBy: "exporter", localBytes: packed.byteLength, written: data.byteLength });
      expect(sha256(readFileSync(driver.config.path))).toBe(sha256(data));
    }
  });

  test("an image file becomes exactly the image: a shorter one truncates what was there", async () => {
    const { driver, client } = await storage();
    await client.flash(file(imageData(1024 * 1024)));
    await client.flash(file(Uint8Array.from([1, 2, 3])));
    expect(readFileSync(driver.config.path)).toEqual(Buffer.from([1, 2, 3]));
  });

  test("with size, the file is a disk of that size and larger images are refused", async () => {
    const { driver, client } = await storage({ size: "1M" });
    await client.flash(file(Uint8Array.from([7, 7, 7])));
    const stored = readFileSync(driver.config.path);
    expect(stored.byteLength).toBe(1024 * 1024);
    expect([...stored.subarray(0, 4)]).toEqual([7, 7, 7, 0]);
    const e = await failure(client.flash(file(imageData(1024 * 1024 + 1))));
    expect(e).toBeInstanceOf(InvalidArgumentError);
    expect(e.message).toContain("the image is larger than the storage (1.0 MiB)");
  });

  test("with verify, the data is read back from the disk and its sha256 reported", async () => {
    const { client } = await storage({ verify: true });
    const data = imageData(5 * 1024 * 1024);
    const result = await client.flash(file(data));
    expect(result.sha256).toBe(sha256(data));
  });

  test("xz and bz2 images made by the real tools travel compressed and are decompressed by the exporter (the runtime's negotiation)", async () => {
    const { driver, client } = await storage({ verify: true });
    // No private side route: the storage drivers report upstream's labels only.
    expect(client.labels["jmp.dev/decompresses"]).toBeUndefined();
    const data = imageData(3 * 1024 * 1024 + 4097);
    for (const format of ["xz", "bz2"] as const) {
      const packed = compress(data, format);
      const result = await client.flash(file(packed, `packed.img.${format}`));
      expect(result).toMatchObject({ compression: format, codedBy: "exporter", localBytes: packed.byteLength, written: data.byteLength, sha256: sha256(data) });
      expect(sha256(readFileSync(driver.config.path))).toBe(sha256(data));
      expect(driver.mux).toBe("dut");
    }
  });

  test("progress counts the compressed file, and the summary says who decompressed it", async () => {
    const { client } = await storage();
    const packed = compress(imageData(2 * 1024 * 1024), "xz");
    const lines = await stderrOf(() => client.flash(file(packed, "progress.img.xz"), { progress: true }));
    expect(lines).toMatch(/^flash progress\.img\.xz: [\d.]+ KiB in [\d.]+ s \([\d.]+ [KM]iB\/s\), xz decompressed by the exporter, 2\.0 MiB written\n$/);
  });

  test("a truncated or corrupt xz or bz2 image fails the flash in one line naming the file and the format", async () => {
    const { driver, client } = await storage();
    const data = imageData(3 * 1024 * 1024);
    const xz = compress(data, "xz");
    const bz2 = compress(data, "bz2");
    const flipped = bz2.slice();
    flipped[flipped.byteLength >> 1]! ^= 0xff;
    const cases = [
      ["cut.img.xz", xz.slice(0, xz.byteLength >> 1), "flash cut.img.xz: write: the xz data is corrupt or truncated: Unexpected end of input"],
      ["cut.img.bz2", bz2.slice(0, bz2.byteLength - 100), "flash cut.img.bz2: write: the bz2 data is corrupt or truncated: Compressed file ends unexpectedly"],
      ["bad.img.bz2", flipped, "flash bad.img.bz2: write: the bz2 data is corrupt or truncated: Data integrity error when decompressing"],
    ] as const;
    for (const [name, bytes, message] of cases) {
      const e = await failure(client.flash(file(bytes, name)));
      expect(e).toBeInstanceOf(InvalidArgumentError);
      expect(e.message).toBe(message);
      expect(driver.mux).toBe("dut");
    }
  });

  test("a file named as compressed that does not start like it, or a --compression its bytes deny, is refused before sending", async () => {
    const { driver, client } = await storage();
    const plain = imageData(64 * 1024);
    let e = await failure(client.flash(file(plain, "plain.img.xz")));
    expect(e.message).toBe("plain.img.xz is named as xz data but does not start like it: it is corrupt, or misnamed");
    e = await failure(client.flash(file(gzipSync(plain), "packed.img"), { compression: "bz2" }));
    expect(e.message).toBe("packed.img is not bz2 data: it does not start like bz2 (it looks like gzip)");
    expect(() => statSync(driver.config.path)).toThrow();
  });

  test("an exporter with JMP_DISABLE_COMPRESSION=1 declines xz and bz2, and the client decompresses them before sending", async () => {
    process.env.JMP_DISABLE_COMPRESSION = "1";
    try {
      const { driver, client } = await storage();
      const data = imageData(1024 * 1024);
      for (const format of ["xz", "bz2"] as const) {
        const packed = compress(data, format);
        const result = await client.flash(file(packed, `declined.img.${format}`));
        expect(result).toMatchObject({ compression: format, codedBy: "client", localBytes: packed.byteLength, written: data.byteLength });
        expect(sha256(readFileSync(driver.config.path))).toBe(sha256(data));
      }
    } finally {
      delete process.env.JMP_DISABLE_COMPRESSION;
    }
  });

  test("an exporter without the xz program fails the flash naming the file and the package, before writing anything", async () => {
    const { driver, client } = await storage();
    const packed = file(compress(imageData(64 * 1024), "xz"), "nowhere.img.xz");
    const e = await failureWithoutPrograms(() => client.flash(packed));
    expect(e.message).toMatch(/^flash nowhere\.img\.xz: write: xz data needs the 'xz' program, which is missing on .*: install the xz-utils package \(apt-get install xz-utils\)$/);
    expect(() => statSync(driver.config.path)).toThrow();
  });

  test("a handle naming xz for data the exporter did not accept (upstream's client, declined, sends it decompressed) is written as it is", async () => {
    const { driver, client } = await storage();
    const data = imageData(1024 * 1024);
    const transfer = await client.resource(new Blob([data]).stream());
    const [written] = await Promise.all([client.write({ ...transfer.handle, x_jmp_content_encoding: "xz" }), transfer.done]);
    transfer.close();
    expect(written).toEqual({ bytes: data.byteLength });
    expect(sha256(readFileSync(driver.config.path))).toBe(sha256(data));
  });

  test("an absent device is reported, never created as a file in /dev", async () => {
    const absent = "/dev/jmp-test-absent-sd-card";
    const { client } = await storage({ path: absent });
    const e = await failure(client.flash(file(Uint8Array.from([1]))));
    expect(e.message).toContain(`${absent} is not present: is the device plugged in and switched to the host?`);
    expect(() => statSync(absent)).toThrow();
  });

  test("a missing local file is named", async () => {
    const { client } = await storage();
    const e = await failure(client.flash(join(dir, "nope.img")));
    expect(e.message).toBe(`no such file: ${join(dir, "nope.img")}`);
  });
});

describe("the mux", () => {
  test("writing and reading are refused while the DUT has the storage", async () => {
    const { driver, client } = await storage();
    await client.dut();
    const e = await failure(client.writeLocalFile(file(Uint8Array.from([1]))));
    expect(e).toBeInstanceOf(DriverError);
    expect(e.message).toContain("the storage is connected to the DUT: switch it to the host first");
    const r = await failure(client.readLocalFile(join(dir, "never.img")));
    expect(r.message).toContain("the storage is connected to the DUT");
    await client.host();
    await client.writeLocalFile(file(Uint8Array.from([1])));
    expect(readFileSync(driver.config.path)).toEqual(Buffer.from([1]));
    await client.off();
    expect(driver.mux).toBe("off");
  });

  test("while a write runs, the DUT cannot take the storage and a second write waits its turn", async () => {
    const { driver, client } = await storage();
    const feed = new TransformStream<Uint8Array, Uint8Array>();
    const transfer = await client.resource(feed.readable);
    const writing = client.write(transfer.handle);
    const writer = feed.writable.getWriter();
    await writer.write(Uint8Array.from([1, 2]));
    // The write is under way once it has made the image file.
    expect(existsSync(driver.config.path)).toBe(false);
    await eventually(() => expect(existsSync(driver.config.path)).toBe(true), { what: "the write to open the image file", interval: 10 });
    expect((await failure(client.dut())).message).toContain("cannot switch the storage to dut while writing it");
    expect((await failure(client.writeLocalFile(file(Uint8Array.from([9]))))).message).toContain("the storage is busy writing");
    await writer.write(Uint8Array.from([3]));
    await writer.close();
    expect(await writing).toEqual({ bytes: 3 });
    transfer.close();
    expect(readFileSync(driver.config.path)).toEqual(Buffer.from([1, 2, 3]));
  });
});

describe("dump", () => {
  test("the storage comes back byte for byte, and compressed when the file name asks", async () => {
    const { driver, client } = await storage();
    const data = imageData(3 * 1024 * 1024 + 5);
    await client.flash(file(data));
    const plain = join(dir, "dump.img");
    const result = await client.dump(plain);
    expect(result.localBytes).toBe(data.byteLength);
    expect(sha256(readFileSync(plain))).toBe(sha256(data));
    const packed = join(dir, "dump.img.gz");
    expect(await client.dump(packed)).toMatchObject({ compression: "gzip", codedBy: "exporter" });
    expect(sha256(gunzipSync(readFileSync(packed)))).toBe(sha256(data));
    expect(driver.mux).toBe("dut");
  });

  test(".img.xz and .img.bz2 dumps are compressed by the exporter, and the real tools undo them byte for byte", async () => {
    const { client } = await storage();
    const data = imageData(2 * 1024 * 1024 + 5);
    await client.flash(file(data));
    for (const [format, program] of [["xz", "xz"], ["bz2", "bzip2"]] as const) {
      const out = join(dir, `dump.img.${format}`);
      expect(await client.dump(out)).toMatchObject({ compression: format, codedBy: "exporter" });
      const undone = Bun.spawnSync([program, "-dc", out], { stdout: "pipe" });
      expect(undone.exitCode).toBe(0);
      expect(sha256(undone.stdout)).toBe(sha256(data));
    }
  });

  test("a dump whose compressor is missing on the exporter fails naming the package, leaving no file", async () => {
    const { client } = await storage();
    await client.flash(file(Uint8Array.from([1])));
    const out = join(dir, "nowhere.img.bz2");
    const e = await failureWithoutPrograms(() => client.dump(out));
    expect(e.message).toContain("bz2 data needs the 'bzip2' program, which is missing on");
    expect(e.message).toContain("install the bzip2 package (apt-get install bzip2)");
    expect(() => statSync(out)).toThrow();
    expect(() => statSync(`${out}.partial`)).toThrow();
  });

  test("a failed dump leaves no partial file behind, and an existing file as it was", async () => {
    const { client } = await storage({ create: false });
    const out = join(dir, "partial.img");
    const e = await failure(client.dump(out));
    expect(e.message).toContain("does not exist");
    expect(() => statSync(out)).toThrow();
    writeFileSync(out, "last week's backup");
    await failure(client.dump(out));
    expect(readFileSync(out, "utf8")).toBe("last week's backup");
    expect(() => statSync(`${out}.partial`)).toThrow();
  });
});

describe("from a URL, fetched by the exporter", () => {
  const data = imageData(2 * 1024 * 1024 + 3);
  const xz = compress(data, "xz");
  const bz2 = compress(data, "bz2");
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch(req) {
      const path = new URL(req.url).pathname;
      if (path === "/disk.img") return new Response(data);
      if (path === "/disk.img.gz") return new Response(gzipSync(data));
      if (path === "/disk.img.xz") return new Response(xz);
      if (path === "/disk.img.bz2") return new Response(bz2);
      if (path === "/cut.img.xz") return new Response(xz.slice(0, xz.byteLength - 10));
      return new Response("not here", { status: 404 });
    },
  });
  afterAll(() => server.stop(true));

  test("plain, gzip, xz and bz2 images arrive intact", async () => {
    const { driver, client } = await storage();
    for (const name of ["disk.img", "disk.img.gz", "disk.img.xz", "disk.img.bz2"]) {
      const result = await client.flash(`http://127.0.0.1:${server.port}/${name}?token=secret`);
      expect(result.written).toBe(data.byteLength);
      expect(sha256(readFileSync(driver.config.path))).toBe(sha256(data));
    }
  });

  test("a truncated xz image fails the flash, naming the URL and the format", async () => {
    const { client } = await storage();
    const url = `http://127.0.0.1:${server.port}/cut.img.xz`;
    const e = await failure(client.flash(`${url}?token=secret`));
    expect(e.message).toBe(`flash ${url}: write: the xz data is corrupt or truncated: Unexpected end of input`);
  });

  test("an HTTP error is reported without the query string", async () => {
    const { client } = await storage();
    const e = await failure(client.flash(`http://127.0.0.1:${server.port}/missing.img?token=secret`));
    expect(e.message).toContain(`GET http://127.0.0.1:${server.port}/missing.img failed: HTTP 404`);
    expect(e.message).not.toContain("secret");
  });
});

describe("config", () => {
  test("sizes take units; nonsense is refused naming the key", () => {
    expect(ImageStorage.create({ path: join(dir, "a.img"), size: "8G", block_size: "1M" }).config).toMatchObject({
      size: 8 * 2 ** 30,
      block_size: 2 ** 20,
    });
    expect(() => ImageStorage.create({ path: join(dir, "a.img"), size: "big" })).toThrow(
      'size: expected a size in bytes of at least 512 B (a number, or with a unit: 512K, 4M, 8G), got "big"',
    );
    expect(() => ImageStorage.create({ path: join(dir, "a.img"), block_size: "1G" })).toThrow("block_size: expected a size in bytes from 4.0 KiB to 64.0 MiB");
  });

  test("a directory, or a file in a missing directory, is refused at load", () => {
    mkdirSync(join(dir, "sub"), { recursive: true });
    expect(() => ImageStorage.create({ path: join(dir, "sub") })).toThrow(`path: ${join(dir, "sub")} is neither a regular file nor a block device`);
    expect(() => ImageStorage.create({ path: join(dir, "no/such/dir/disk.img") })).toThrow("the directory of");
  });
});

/** A loop device over a small file, when this machine lets us make one (root, losetup). */
function loopDevice(bytes: number): { path: string; detach(): void } | undefined {
  if (process.getuid?.() !== 0 || !Bun.which("losetup")) return undefined;
  const backing = join(dir, `loop-${++n}.img`);
  writeFileSync(backing, new Uint8Array(bytes));
  const r = Bun.spawnSync(["losetup", "-f", "--show", backing]);
  if (r.exitCode !== 0) return undefined;
  const path = r.stdout.toString().trim();
  return { path, detach: () => Bun.spawnSync(["losetup", "-d", path]) };
}

const loop = loopDevice(4 * 1024 * 1024);
afterAll(() => loop?.detach());

describe.skipIf(!loop)("a block device (a loop device)", () => {
  test("is written from its start, keeps its size, and reads back in full", async () => {
    const { client } = await storage({ path: loop!.path, verify: true });
    const data = imageData(1024 * 1024 + 512);
    const result = await client.flash(file(data));
    expect(result.sha256).toBe(sha256(data));
    const out = join(dir, "loop-dump.img");
    await client.dump(out);
    const dumped = readFileSync(out);
    expect(dumped.byteLength).toBe(4 * 1024 * 1024);
    expect(sha256(dumped.subarray(0, data.byteLength))).toBe(sha256(data));
  });

  test("an image larger than the device is refused", async () => {
    const { client } = await storage({ path: loop!.path });
    const e = await failure(client.flash(file(new Uint8Array(5 * 1024 * 1024))));
    expect(e.message).toContain("the image does not fit");
  });

  test("a device held open exclusively elsewhere (as when mounted) is not written", async () => {
    const { client } = await storage({ path: loop!.path });
    const held = openSync(loop!.path, constants.O_RDONLY | constants.O_EXCL);
    try {
      const e = await failure(client.flash(file(Uint8Array.from([1]))));
      expect(e.message).toContain(`${loop!.path} is in use (mounted, or open elsewhere)`);
    } finally {
      closeSync(held);
    }
  });

  test("size is refused for a block device", () => {
    expect(() => ImageStorage.create({ path: loop!.path, size: "1M" })).toThrow("is a block device, which has its own size");
  });
});
