/**
 * Flash through the router: `jmp shell -l bench=flash -- j storage flash IMAGE` (a
 * client config, the controller's router, an exporter under `jmp run --exporter`),
 * the same disk-like image as bench/flash.ts, vs. `cat` + sync of it to the same disk.
 * Then the dump of that disk back (`j storage dump FILE`), vs. `cat` + sync of the
 * disk to a file. Then both again with random data (an encrypted or compressed
 * filesystem): nothing for transit compression to gain, so what its framing costs.
 */
import { closeSync, openSync, rmSync, statSync, writeSync } from "node:fs";
import { dirname, join } from "node:path";
import { writeImage } from "../test/fixtures/disk-image.ts";
import { catAndSync, reportedSeconds, settle } from "./flash.ts";
import type { BenchLab } from "./lab.ts";
import { MiB, rate, type Options, type Result } from "./lib.ts";

export async function flashRouter({ quick }: Options, { lab, flashDisk }: BenchLab): Promise<Result[]> {
  const dir = dirname(flashDisk);
  const image = join(dir, "router-image.img");
  const rounds = quick ? 1 : 3;
  try {
    const size = (quick ? 64 : 512) * MiB;
    writeImage(image, size);
    const disk = await roundTrip(lab, image, flashDisk, rounds);
    const randomSize = (quick ? 32 : 256) * MiB;
    writeRandom(image, randomSize);
    const random = await roundTrip(lab, image, flashDisk, rounds);
    const mbps = (bytes: number, s: number) => bytes / 1e6 / s;
    return [
      rate("flash via router: j storage flash", mbps(size, disk.flash), mbps(size, disk.flashCat), "MB/s", `${size / MiB} MiB disk-like image, best of ${rounds}, as flash reports it (sent: ${disk.sent}); floor = cat + sync to the same disk`),
      rate("dump via router: j storage dump", mbps(disk.dumpSize, disk.dump), mbps(disk.dumpSize, disk.dumpCat), "MB/s", `the flashed disk (${(disk.dumpSize / MiB).toFixed(0)} MiB) back into a file, best of ${rounds}, as dump reports it (received: ${disk.received}); floor = cat + sync of the disk to a file`),
      rate("flash via router, random data", mbps(randomSize, random.flash), mbps(randomSize, random.flashCat), "MB/s", `${randomSize / MiB} MiB of random bytes, best of ${rounds} (sent: ${random.sent}); floor = cat + sync to the same disk`),
      rate("dump via router, random data", mbps(random.dumpSize, random.dump), mbps(random.dumpSize, random.dumpCat), "MB/s", `that disk back into a file, best of ${rounds} (received: ${random.received}); floor = cat + sync of the disk to a file`),
    ];
  } finally {
    rmSync(image, { force: true });
    rmSync(join(dir, "router-raw.img"), { force: true });
    rmSync(join(dir, "router-dump.img"), { force: true });
  }
}

interface RoundTrip {
  /** Best seconds, as `j` reports them, and the floors'. */
  flash: number;
  flashCat: number;
  dump: number;
  dumpCat: number;
  /** What `j` says went over the wire ("raw" when not compressed). */
  sent: string;
  received: string;
  dumpSize: number;
}

/** `image` flashed to the `bench=flash` exporter's disk and dumped back, `rounds` times each, beside `cat` + sync. */
async function roundTrip(lab: BenchLab["lab"], image: string, flashDisk: string, rounds: number): Promise<RoundTrip> {
  const dir = dirname(flashDisk);
  const raw = join(dir, "router-raw.img");
  const dumped = join(dir, "router-dump.img");
  const r: RoundTrip = { flash: Infinity, flashCat: Infinity, dump: Infinity, dumpCat: Infinity, sent: "", received: "", dumpSize: 0 };
  for (let i = 0; i < rounds; i++) {
    settle();
    const run = await lab.jmp(["shell", "--client", "bench", "-l", "bench=flash", "--", "j", "storage", "flash", image], { timeoutMs: 120_000 });
    if (run.code !== 0) throw new Error(`j storage flash through the router exited ${run.code}: ${run.stderr}`);
    r.flash = Math.min(r.flash, reportedSeconds(run.stderr));
    r.sent = /sent as ([\d.]+ [KMG]iB) of zstd/.exec(run.stderr)?.[1] ?? "raw";
    settle();
    r.flashCat = Math.min(r.flashCat, catAndSync(image, raw));
  }
  for (let i = 0; i < rounds; i++) {
    settle();
    const run = await lab.jmp(["shell", "--client", "bench", "-l", "bench=flash", "--", "j", "storage", "dump", dumped], { timeoutMs: 120_000 });
    if (run.code !== 0) throw new Error(`j storage dump through the router exited ${run.code}: ${run.stderr}`);
    r.dump = Math.min(r.dump, reportedSeconds(run.stderr, "dump"));
    r.received = /received as ([\d.]+ [KMG]iB) of zstd/.exec(run.stderr)?.[1] ?? "raw";
    r.dumpSize = statSync(dumped).size;
    settle();
    r.dumpCat = Math.min(r.dumpCat, catAndSync(flashDisk, raw));
  }
  return r;
}

/** `size` random bytes at `path`: data that no compressor shrinks. */
function writeRandom(path: string, size: number): void {
  const fd = openSync(path, "w");
  const block = new Uint8Array(MiB);
  try {
    for (let at = 0; at < size; at += MiB) {
      // getRandomValues fills 64 KiB at most per call.
      for (let i = 0; i < MiB; i += 64 * 1024) crypto.getRandomValues(block.subarray(i, i + 64 * 1024));
      writeSync(fd, block);
    }
  } finally {
    closeSync(fd);
  }
}
