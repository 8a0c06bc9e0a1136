/**
 * Flash: `j storage flash` of an image to the image-file storage vs. `cat` + sync of it
 * to the same disk; then `j storage dump` of that disk vs. `cat` + sync of it to a file.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MiB, rate, type Options, type Result } from "./lib.ts";
import { JMP } from "./startup.ts";
import { writeImage } from "../test/fixtures/disk-image.ts";

function run(argv: string[]): { seconds: number; stderr: string } {
  const t = performance.now();
  const r = Bun.spawnSync(argv, { stdout: "ignore", stderr: "pipe" });
  const seconds = (performance.now() - t) / 1000;
  if (r.exitCode !== 0) throw new Error(`${argv.join(" ")} exited ${r.exitCode}: ${r.stderr}`);
  return { seconds, stderr: r.stderr.toString() };
}

/**
 * Writeback left over from writing the image (or from the other side's copy) is
 * not charged to whichever runs next: a file system in ordered mode makes an
 * fsync wait for other files' dirty data too.
 */
export function settle(): void {
  run(["sync"]);
}

/** The time `j storage flash` reports in its summary line, in seconds. */
export function reportedSeconds(stderr: string, verb: "flash" | "dump" = "flash"): number {
  const reported = /in ([\d.]+) s/.exec(stderr);
  if (!reported) throw new Error(`no summary line from j storage ${verb}: ${stderr}`);
  return Number(reported[1]);
}

/** The floor: seconds to `cat` the image to `dest` on the same disk and sync it. */
export function catAndSync(image: string, dest: string): number {
  return run(["sh", "-c", `cat '${image}' > '${dest}' && sync '${dest}'`]).seconds;
}

export async function flash({ quick }: Options): Promise<Result[]> {
  const size = (quick ? 64 : 512) * MiB;
  // Both the image-file storage and cat's copy land in this one directory, so on one disk.
  const dir = mkdtempSync(join(tmpdir(), "jmp-bench-flash-"));
  try {
    const image = join(dir, "image.img");
    writeImage(image, size);
    const config = join(dir, "lab.yaml");
    writeFileSync(config, `apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata:
  namespace: default
  name: flash-bench
export:
  storage:
    type: ImageStorage
    config:
      path: ${join(dir, "disk.img")}
`);
    const rounds = quick ? 1 : 3;
    let best = Infinity, bestWhole = Infinity, bestCat = Infinity;
    for (let i = 0; i < rounds; i++) {
      settle();
      const r = run([JMP, "shell", "--exporter-config", config, "--", "j", "storage", "flash", image]);
      best = Math.min(best, reportedSeconds(r.stderr));
      bestWhole = Math.min(bestWhole, r.seconds);
      settle();
      bestCat = Math.min(bestCat, catAndSync(image, join(dir, "raw.img")));
    }
    // The flashed disk back into a file, against cat + sync of the disk to a file.
    let bestDump = Infinity, bestDumpCat = Infinity;
    for (let i = 0; i < rounds; i++) {
      settle();
      const r = run([JMP, "shell", "--exporter-config", config, "--", "j", "storage", "dump", join(dir, "dump.img")]);
      bestDump = Math.min(bestDump, reportedSeconds(r.stderr, "dump"));
      settle();
      bestDumpCat = Math.min(bestDumpCat, catAndSync(join(dir, "disk.img"), join(dir, "raw.img")));
    }
    const mbps = (s: number) => size / 1e6 / s;
    return [
      rate("flash: j storage flash", mbps(best), mbps(bestCat), "MB/s", `${size / MiB} MiB, best of ${rounds}, as flash reports it; floor = cat + sync to the same disk`),
      rate("flash: whole jmp shell run", mbps(bestWhole), mbps(bestCat), "MB/s", "including shell and exporter start-up"),
      rate("dump: j storage dump", mbps(bestDump), mbps(bestDumpCat), "MB/s", `the flashed disk back into a file, best of ${rounds}, as dump reports it; floor = cat + sync of the disk to a file`),
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
