/**
 * A flash through the router, as a lab user runs it from a laptop: `jmp shell -l …
 * -- j storage flash IMAGE` against an exporter under `jmp run --exporter`. A raw
 * image that compresses goes zstd-compressed on the way and lands byte for byte; one
 * that does not, and an image compressed already, go as they are.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { readFileSync, statSync, truncateSync, writeFileSync } from "node:fs";
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

async function flash(image: string): Promise<string> {
  const r = await lab.jmp(["shell", "--client", "alice", "-l", "board=rpi4", "--", "j", "storage", "flash", image], { timeoutMs: 60_000 });
  expect({ code: r.code, stderr: r.stderr }).toMatchObject({ code: 0 });
  return r.stderr.split("\n").find((l) => l.startsWith("flash "))!;
}

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
