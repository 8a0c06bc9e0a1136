/**
 * Flashing end to end, as a user does it: `jmp shell --exporter-config … -- j storage …`
 * with the built executable, a 256 MiB image and the image-file storage. Also prints
 * the flash throughput next to a plain `cat` of the same file to the same disk.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { jmp, JMP, tempDir, type Result } from "./helpers.ts";
import { compressFile, writeImage } from "./fixtures/disk-image.ts";

const MiB = 2 ** 20;
const SIZE = 256 * MiB;
const dir = tempDir("jmp-storage-");
const image = join(dir.path, "image.img");
const packed = join(dir.path, "image.img.gz");
const packedXz = join(dir.path, "image.img.xz");
const packedBz2 = join(dir.path, "image.img.bz2");
const cutXz = join(dir.path, "cut.img.xz");
const disk = join(dir.path, "disk.img");
const checked = join(dir.path, "checked.img");
let config = "";
let imageSha = "";
let server: ReturnType<typeof Bun.serve>;

async function sha256(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of Bun.file(path).stream()) hash.update(chunk);
  return hash.digest("hex");
}

beforeAll(async () => {
  writeImage(image, SIZE);
  imageSha = await sha256(image);
  await Bun.write(packed, gzipSync(await Bun.file(image).arrayBuffer(), { level: 1 }));
  // As Raspberry Pi OS and Yocto ship them: made by the real xz and bzip2.
  compressFile(image, "xz", packedXz);
  compressFile(image, "bz2", packedBz2);
  // (Not Bun.write of a Bun.file slice: Bun 1.4.5 copies the whole file then.)
  const xz = readFileSync(packedXz);
  writeFileSync(cutXz, xz.subarray(0, xz.byteLength >> 1));
  server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch: (req) => {
      const served: Record<string, string> = { "/image.img.gz": packed, "/image.img.xz": packedXz };
      const path = served[new URL(req.url).pathname];
      return path ? new Response(Bun.file(path)) : new Response("no", { status: 404 });
    },
  });
  config = dir.file("lab.yaml", `apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata:
  namespace: default
  name: flash-bench
export:
  storage:
    type: ImageStorage
    config:
      path: ${disk}
  checked:
    type: ImageStorage
    config:
      path: ${checked}
      verify: true
`);
}, 120_000);

afterAll(() => {
  server?.stop(true);
  dir.remove();
});

const LONG = 120_000;
const j = (args: string, env: Record<string, string> = {}): Promise<Result> =>
  jmp(["shell", "--exporter-config", config, "--", "sh", "-c", args], { env, timeoutMs: LONG });

/** The one summary line a flash prints when stderr is not a terminal. */
function summary(r: Result): string {
  expect(r.stderr).not.toContain("\r");
  const lines = r.stderr.trim().split("\n");
  expect(lines).toHaveLength(1);
  return lines[0]!;
}

/**
 * `j storage flash PATH` on a terminal (through script(1)), which must succeed: all the
 * terminal got, and the progress lines redrawn in place before the summary.
 */
async function flashOnTerminal(path: string, inShell = `j storage flash ${path}`): Promise<{ out: string; redraws: string[] }> {
  const command = `${JMP} shell --exporter-config ${config} -- sh -c '${inShell}'`;
  const proc = Bun.spawn(["script", "-qefc", command, "/dev/null"], {
    env: { ...process.env, TERM: "xterm", NO_COLOR: "1" },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const timer = setTimeout(() => proc.kill("SIGKILL"), LONG);
  const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
  clearTimeout(timer);
  expect(code).toBe(0);
  const redraws = out.split("\r\x1b[2K").slice(1, -1);
  expect(redraws.length).toBeGreaterThan(0);
  return { out, redraws };
}

const mbps = (bytes: number, seconds: number) => `${(bytes / 1e6 / seconds).toFixed(0)} MB/s`;

test("a 256 MiB image arrives byte for byte, with one summary line; next to cat's throughput", async () => {
  const started = performance.now();
  const r = await j(`j storage flash ${image}`);
  const total = (performance.now() - started) / 1000;
  expect(r.code).toBe(0);
  const line = summary(r);
  // A local session reads the image itself (exporter/local-file.ts).
  expect(line).toMatch(/^flash image\.img: 256\.0 MiB in [\d.]+ s \([\d.]+ [MG]iB\/s\), read from the file by the exporter$/);
  expect(await sha256(disk)).toBe(imageSha);

  const raw = join(dir.path, "raw.img");
  const catStarted = performance.now();
  const cat = Bun.spawnSync(["sh", "-c", `cat ${image} > ${raw} && sync ${raw}`]);
  const catSeconds = (performance.now() - catStarted) / 1000;
  expect(cat.exitCode).toBe(0);
  const flashSeconds = Number(/in ([\d.]+) s/.exec(line)![1]);
  console.log(
    `throughput, 256 MiB to ${dir.path}: j storage flash ${mbps(SIZE, flashSeconds)} ` +
      `(whole jmp shell run ${mbps(SIZE, total)}); cat + sync ${mbps(SIZE, catSeconds)}`,
  );
}, LONG);

test("on a terminal the progress is one line redrawn in place, then the summary (streamed: from a pipe)", async () => {
  // A local session reads a file by its path faster than the display redraws; a
  // pipe is streamed, as over a network, and has no size to show.
  const { out, redraws } = await flashOnTerminal("/dev/stdin", `cat ${image} | j storage flash /dev/stdin`);
  for (const frame of redraws) {
    expect(frame).toMatch(/^flash stdin  [\d.]+ (B|KiB|MiB)  [\d.]+ (B|KiB|MiB)\/s/);
    expect(frame).not.toContain("\n");
  }
  expect(out).toMatch(/\r\x1b\[2Kflash stdin: 256\.0 MiB in [\d.]+ s \([\d.]+ [MG]iB\/s\)\r?\n$/);
  expect(await sha256(disk)).toBe(imageSha);
}, LONG);

test("a gzip image is decompressed by the exporter, as negotiated, and verified", async () => {
  const r = await j(`j checked flash ${packed}`);
  expect(r.code).toBe(0);
  expect(summary(r)).toMatch(
    new RegExp(`^flash image\\.img\\.gz: [\\d.]+ MiB in [\\d.]+ s \\([\\d.]+ [MG]iB/s\\), read from the file by the exporter, gzip decompressed by the exporter, 256\\.0 MiB written, sha256 ${imageSha} verified$`),
  );
  expect(await sha256(checked)).toBe(imageSha);
}, LONG);

test("xz and bz2 images are decompressed by the exporter, byte for byte; throughput of .img, .img.xz and .img.bz2 side by side", async () => {
  const rates: string[] = [];
  for (const [path, format] of [[image, undefined], [packedXz, "xz"], [packedBz2, "bz2"]] as const) {
    const started = performance.now();
    const r = await j(`j storage flash ${path}`);
    const seconds = (performance.now() - started) / 1000;
    expect(r.code).toBe(0);
    const line = summary(r);
    const name = path.slice(dir.path.length + 1).replace(/\./g, "\\.");
    expect(line).toMatch(new RegExp(`^flash ${name}: [\\d.]+ MiB in [\\d.]+ s \\([\\d.]+ [MG]iB/s\\), read from the file by the exporter${format ? `, ${format} decompressed by the exporter, 256\\.0 MiB written` : ""}$`));
    expect(await sha256(disk)).toBe(imageSha);
    const flashSeconds = Number(/in ([\d.]+) s/.exec(line)![1]);
    rates.push(`.img${format ? `.${format}` : ""} ${mbps(SIZE, flashSeconds)} (${(statSync(path).size / MiB).toFixed(1)} MiB sent; whole run ${mbps(SIZE, seconds)})`);
  }
  console.log(`throughput, 256 MiB image written to ${dir.path}: ${rates.join(", ")}`);
}, LONG);

test("a truncated .img.xz fails the flash: exit 1, one line naming the file and the format", async () => {
  const r = await j(`j storage flash ${cutXz}`);
  expect(r.code).toBe(1);
  const lines = r.stderr.trim().split("\n");
  expect(lines).toHaveLength(1);
  expect(lines[0]).toContain("flash cut.img.xz: write: the xz data is corrupt or truncated: Unexpected end of input");
}, LONG);

test("on a terminal an xz flash shows progress as the other formats do: the compressed bytes sent, of the file's size", async () => {
  const { out, redraws } = await flashOnTerminal(packedXz);
  const total = `${(statSync(packedXz).size / MiB).toFixed(1)} MiB`;
  for (const frame of redraws) {
    expect(frame).toMatch(new RegExp(`^flash image\\.img\\.xz  [\\d.]+ (B|KiB|MiB) / ${total.replace(".", "\\.")}  \\d+%  [\\d.]+ (B|KiB|MiB)/s`));
  }
  expect(out).toMatch(/\r\x1b\[2Kflash image\.img\.xz: [\d.]+ MiB in [\d.]+ s \([\d.]+ [MG]iB\/s\), read from the file by the exporter, xz decompressed by the exporter, 256\.0 MiB written\r?\n$/);
  expect(await sha256(disk)).toBe(imageSha);
}, LONG);

test("an image the exporter cannot open by its path (a pipe) is streamed to it, as over a network", async () => {
  const r = await j(`cat ${image} | j storage flash /dev/stdin`);
  expect(r.code).toBe(0);
  expect(summary(r)).toMatch(/^flash stdin: 256\.0 MiB in [\d.]+ s \([\d.]+ [MG]iB\/s\)$/);
  expect(await sha256(disk)).toBe(imageSha);
}, LONG);

test("an exporter that declines compression (JMP_DISABLE_COMPRESSION=1) gets it decompressed by the client, xz too", async () => {
  for (const [path, format] of [[packed, "gzip"], [packedXz, "xz"]] as const) {
    const r = await j(`j storage flash ${path}`, { JMP_DISABLE_COMPRESSION: "1" });
    expect(r.code).toBe(0);
    expect(summary(r)).toContain(`${format} decompressed by the client, 256.0 MiB written`);
    expect(await sha256(disk)).toBe(imageSha);
  }
}, LONG);

test("an http:// URL is fetched by the exporter itself (and a gzip or xz one decompressed there)", async () => {
  for (const name of ["image.img.gz", "image.img.xz"]) {
    const url = `http://127.0.0.1:${server.port}/${name}`;
    const r = await j(`j checked flash ${url}`);
    expect(r.code).toBe(0);
    expect(summary(r)).toMatch(new RegExp(`^flash ${url.replace(/[.?]/g, "\\$&")}: 256\\.0 MiB in [\\d.]+ s .*, fetched by the exporter, sha256 ${imageSha} verified$`));
    expect(await sha256(checked)).toBe(imageSha);
  }
  const missing = await j(`j checked flash http://127.0.0.1:${server.port}/nothing.img`);
  expect(missing.code).toBe(1);
  expect(missing.stderr).toContain(`GET http://127.0.0.1:${server.port}/nothing.img failed: HTTP 404`);
}, LONG);

test("dump brings the storage back byte for byte; host, dut and off switch it", async () => {
  await j(`j storage flash ${image}`);
  const out = join(dir.path, "dump.img");
  const r = await j(`j storage dump ${out}`);
  expect(r.code).toBe(0);
  expect(summary(r)).toMatch(/^dump dump\.img: 256\.0 MiB in [\d.]+ s .*, written to the file by the exporter$/);
  expect(statSync(out).size).toBe(SIZE);
  expect(await sha256(out)).toBe(imageSha);
  // The image's runs of zeros are holes in the dump: only its random sixteenth takes
  // disk space, and the zeros it ends with still count in its size (above).
  expect(statSync(out).blocks * 512).toBeLessThan(SIZE / 8);
  const nowhere = await j("j storage dump /nonexistent-dir/dump.img");
  expect(nowhere.code).toBe(2);
  expect(nowhere.stderr).toContain("cannot write the dump to /nonexistent-dir/dump.img: the directory /nonexistent-dir does not exist");
  expect(nowhere.stderr).not.toContain("ENOENT");
  const refused = await j(`j storage dut && j storage write-local-file ${image}`);
  expect(refused.code).toBe(1);
  expect(refused.stderr).toContain("the storage is connected to the DUT: switch it to the host first");
  const allowed = await j(`j storage host && j storage write-local-file ${image} && j storage off`);
  expect(allowed.code).toBe(0);
}, LONG);
