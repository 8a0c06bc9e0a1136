/**
 * A flash and a dump through the router, as a lab user runs them from a laptop:
 * `jmp shell -l … -- j storage flash IMAGE` (or `dump FILE`) against an exporter
 * under `jmp run --exporter`. A raw image that compresses goes zstd-compressed on the
 * way and lands byte for byte; one that does not, and an image compressed already,
 * go as they are. A dump comes back compressed where the disk's data shrinks.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { eventually } from "../src/api/eventually.ts";
import { JMP } from "./helpers.ts";
import { Lab } from "./distributed/lab.ts";
import { compressFile, writeImage } from "./fixtures/disk-image.ts";

let lab: Lab;
let disk: string;

beforeAll(async () => {
  lab = await Lab.start();
  await lab.addClient("alice");
  const file = await lab.addExporter("sd-1", { board: "rpi4" });
  disk = join(lab.dir.path, "disk.img");
  const doc = parse(readFileSync(file, "utf8")) as Record<string, unknown>;
  doc.export = { storage: { type: "ImageStorage", config: { path: disk } } };
  writeFileSync(file, stringify(doc));
  await lab.runExporter("sd-1");
}, 30_000);

afterAll(async () => lab?.close(), 20_000);

const sha256 = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");

async function storage(verb: "flash" | "dump", file: string): Promise<string> {
  const r = await lab.jmp(["shell", "--client", "alice", "-l", "board=rpi4", "--", "j", "storage", verb, file], { timeoutMs: 60_000 });
  expect({ code: r.code, stderr: r.stderr }).toMatchObject({ code: 0 });
  return r.stderr.split("\n").find((l) => l.startsWith(`${verb} `))!;
}

const flash = (image: string) => storage("flash", image);

test("a raw image goes zstd-compressed through the router and lands byte for byte", async () => {
  const image = join(lab.dir.path, "image.img");
  writeImage(image, 64 * 2 ** 20);
  const line = await flash(image);
  // 64 KiB of random bytes in every MiB: a sixteenth of the image, and the zeros next to nothing.
  const sent = /sent as ([\d.]+) MiB of zstd/.exec(line);
  expect(line).toMatch(/^flash image\.img: 64\.0 MiB in [\d.]+ s \([\d.]+ [MG]iB\/s\), sent as [\d.]+ MiB of zstd$/);
  expect(Number(sent![1])).toBeLessThan(6);
  expect(sha256(disk)).toBe(sha256(image));
}, 60_000);

test("a raw image that does not compress (random bytes) goes as it is", async () => {
  const image = join(lab.dir.path, "random.img");
  writeFileSync(image, Buffer.concat(Array.from({ length: 128 }, () => crypto.getRandomValues(new Uint8Array(65536)))));
  const line = await flash(image);
  expect(line).toMatch(/^flash random\.img: 8\.0 MiB in [\d.]+ s \([\d.]+ [MG]iB\/s\)$/);
  expect(sha256(disk)).toBe(sha256(image));
}, 60_000);

test("a compressed image goes as it is, decompressed by the exporter", async () => {
  const image = join(lab.dir.path, "other.img");
  writeImage(image, 8 * 2 ** 20);
  compressFile(image, "xz", `${image}.xz`);
  const line = await flash(`${image}.xz`);
  expect(line).toContain("xz decompressed by the exporter");
  expect(line).not.toContain("zstd");
  expect(sha256(disk)).toBe(sha256(image));
}, 60_000);

test("a flash interrupted on its way (Ctrl-C) leaves the exporter free: its lease is released and the next flash lands whole", async () => {
  const image = join(lab.dir.path, "big.img");
  writeImage(image, 256 * 2 ** 20);
  truncateSync(disk, 0);
  // As a terminal's Ctrl-C: the shell and its j, both.
  const shell = Bun.spawn([JMP, "shell", "--client", "alice", "-l", "board=rpi4", "--", "j", "storage", "flash", image], {
    env: { ...process.env, ...lab.env }, stdout: "ignore", stderr: "pipe", detached: true,
  });
  await eventually(() => expect(statSync(disk).size).toBeGreaterThan(8 * 2 ** 20), { timeout: 30_000, interval: 10 });
  process.kill(-shell.pid, "SIGINT");
  expect(await shell.exited).toBe(130);
  await eventually(async () => expect(await lab.openLeases()).toEqual([]), { timeout: 10_000 });
  const line = await flash(image);
  expect(line).toContain("sent as");
  expect(sha256(disk)).toBe(sha256(image));
}, 90_000);

test("a dump comes back through the router compressed where the disk's data shrinks, and lands byte for byte", async () => {
  writeImage(disk, 64 * 2 ** 20);
  const out = join(lab.dir.path, "dumped.img");
  const line = await storage("dump", out);
  expect(line).toMatch(/^dump dumped\.img: 64\.0 MiB in [\d.]+ s \([\d.]+ [MG]iB\/s\), received as [\d.]+ MiB of zstd$/);
  // The random sixteenth of the image, in stored frames, and the zeros as a few bytes each 256 KiB.
  expect(Number(/received as ([\d.]+) MiB/.exec(line)![1])).toBeLessThan(6);
  expect(sha256(out)).toBe(sha256(disk));
  // The zeros it received are holes in the file.
  expect(statSync(out).blocks * 512).toBeLessThan(16 * 2 ** 20);
  // Random data comes in stored frames: as large as it is, and whole.
  writeFileSync(disk, Buffer.concat(Array.from({ length: 128 }, () => crypto.getRandomValues(new Uint8Array(65536)))));
  const noise = await storage("dump", out);
  expect(noise).toMatch(/received as 8\.0 MiB of zstd$/);
  expect(sha256(out)).toBe(sha256(disk));
}, 60_000);

test("a dump interrupted on its way (Ctrl-C) leaves no partial file and no lease, and the next dump lands whole", async () => {
  writeImage(disk, 256 * 2 ** 20);
  const out = join(lab.dir.path, "cut.img");
  const shell = Bun.spawn([JMP, "shell", "--client", "alice", "-l", "board=rpi4", "--", "j", "storage", "dump", out], {
    env: { ...process.env, ...lab.env }, stdout: "ignore", stderr: "pipe", detached: true,
  });
  await eventually(() => expect(existsSync(`${out}.partial`) && statSync(`${out}.partial`).size > 8 * 2 ** 20).toBe(true), { timeout: 30_000, interval: 5 });
  process.kill(-shell.pid, "SIGINT");
  expect(await shell.exited).toBe(130);
  expect(existsSync(`${out}.partial`)).toBe(false);
  expect(existsSync(out)).toBe(false);
  await eventually(async () => expect(await lab.openLeases()).toEqual([]), { timeout: 10_000 });
  expect(await storage("dump", out)).toContain("received as");
  expect(sha256(out)).toBe(sha256(disk));
}, 90_000);
