import { expect, test } from "bun:test";
import { formatBytes, formatDuration, TransferProgress } from "./progress-stream.ts";

function terminal(isTTY: boolean, columns = 80) {
  const writes: string[] = [];
  return { writes, out: { isTTY, columns, write: (s: string) => (writes.push(s), true) } };
}

test("on a terminal, one line redrawn in place with size, percentage, rate and time left", async () => {
  const t = terminal(true);
  const p = new TransferProgress({ label: "flash disk.img", total: 100 * 2 ** 20 }, t.out, true);
  p.update(10 * 2 ** 20);
  await Bun.sleep(250);
  p.update(30 * 2 ** 20);
  await Bun.sleep(250);
  const last = t.writes.at(-1)!;
  expect(last).toStartWith("\r\x1b[2Kflash disk.img  30.0 MiB / 100.0 MiB  30%  ");
  expect(last).toMatch(/MiB\/s  ETA 0:0\d$/);
  expect(t.writes.every((w) => !w.includes("\n"))).toBe(true);
  p.finish("gzip decompressed by the exporter");
  expect(t.writes.at(-2)).toBe("\r\x1b[2K");
  expect(t.writes.at(-1)).toMatch(/^flash disk\.img: 30\.0 MiB in 0\.\d s \([\d.]+ MiB\/s\), gzip decompressed by the exporter\n$/);
});

test("a line never grows wider than the terminal", async () => {
  const t = terminal(true, 30);
  const p = new TransferProgress({ label: "flash a-very-long-image-name-indeed.img" }, t.out, true);
  p.update(5);
  await Bun.sleep(250);
  p.stop();
  expect(t.writes[0]!.replace("\r\x1b[2K", "").length).toBeLessThanOrEqual(29);
});

test("elsewhere, nothing but the summary line", async () => {
  const t = terminal(false);
  const p = new TransferProgress({ label: "dump disk.img" }, t.out);
  p.update(2048);
  await Bun.sleep(250);
  p.finish();
  p.finish();
  expect(t.writes).toHaveLength(1);
  expect(t.writes[0]).toMatch(/^dump disk\.img: 2\.0 KiB in 0\.\d s \([\d.]+ KiB\/s\)\n$/);
});

test("stopping after a failure clears the line and prints nothing more", async () => {
  const t = terminal(true);
  const p = new TransferProgress({ label: "x", total: 10 }, t.out, true);
  await Bun.sleep(250);
  p.stop();
  p.finish();
  expect(t.writes.at(-1)).toBe("\r\x1b[2K");
});

test("units", () => {
  expect(formatBytes(512)).toBe("512 B");
  expect(formatBytes(256 * 2 ** 20)).toBe("256.0 MiB");
  expect(formatBytes(1.5 * 2 ** 30)).toBe("1.5 GiB");
  expect(formatDuration(59.2)).toBe("1:00");
  expect(formatDuration(61)).toBe("1:01");
  expect(formatDuration(3725)).toBe("1:02:05");
});
