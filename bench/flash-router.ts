/**
 * Flash through the router: `jmp shell -l bench=flash -- j storage flash IMAGE` (a
 * client config, the controller's router, an exporter under `jmp run --exporter`),
 * the same disk-like image as bench/flash.ts, vs. `cat` + sync of it to the same disk.
 * Then the dump of that disk back (`j storage dump FILE`), vs. `cat` + sync of the
 * disk to a file.
 */
import { rmSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { writeImage } from "../test/fixtures/disk-image.ts";
import { catAndSync, reportedSeconds, settle } from "./flash.ts";
import type { BenchLab } from "./lab.ts";
import { MiB, rate, type Options, type Result } from "./lib.ts";

export async function flashRouter({ quick }: Options, { lab, flashDisk }: BenchLab): Promise<Result[]> {
  const size = (quick ? 64 : 512) * MiB;
  const dir = dirname(flashDisk);
  const image = join(dir, "router-image.img");
  const raw = join(dir, "router-raw.img");
  const dumped = join(dir, "router-dump.img");
  writeImage(image, size);
  try {
    const rounds = quick ? 1 : 3;
    let best = Infinity, bestCat = Infinity, sent = "";
    for (let i = 0; i < rounds; i++) {
      settle();
      const r = await lab.jmp(["shell", "--client", "bench", "-l", "bench=flash", "--", "j", "storage", "flash", image], { timeoutMs: 120_000 });
      if (r.code !== 0) throw new Error(`j storage flash through the router exited ${r.code}: ${r.stderr}`);
      best = Math.min(best, reportedSeconds(r.stderr));
      sent = /sent as ([\d.]+ [KMG]iB) of zstd/.exec(r.stderr)?.[1] ?? "raw";
      settle();
      bestCat = Math.min(bestCat, catAndSync(image, raw));
    }
    let bestDump = Infinity, bestDumpCat = Infinity, received = "", dumpSize = 0;
    for (let i = 0; i < rounds; i++) {
      settle();
      const r = await lab.jmp(["shell", "--client", "bench", "-l", "bench=flash", "--", "j", "storage", "dump", dumped], { timeoutMs: 120_000 });
      if (r.code !== 0) throw new Error(`j storage dump through the router exited ${r.code}: ${r.stderr}`);
      bestDump = Math.min(bestDump, reportedSeconds(r.stderr, "dump"));
      received = /received as ([\d.]+ [KMG]iB) of zstd/.exec(r.stderr)?.[1] ?? "raw";
      dumpSize = statSync(dumped).size;
      settle();
      bestDumpCat = Math.min(bestDumpCat, catAndSync(flashDisk, raw));
    }
    const mbps = (s: number) => size / 1e6 / s;
    return [
      rate("flash via router: j storage flash", mbps(best), mbps(bestCat), "MB/s", `${size / MiB} MiB disk-like image, best of ${rounds}, as flash reports it (sent: ${sent}); floor = cat + sync to the same disk`),
      rate("dump via router: j storage dump", dumpSize / 1e6 / bestDump, dumpSize / 1e6 / bestDumpCat, "MB/s", `the flashed disk (${(dumpSize / MiB).toFixed(0)} MiB) back into a file, best of ${rounds}, as dump reports it (received: ${received}); floor = cat + sync of the disk to a file`),
    ];
  } finally {
    rmSync(image, { force: true });
    rmSync(raw, { force: true });
    rmSync(dumped, { force: true });
  }
}
