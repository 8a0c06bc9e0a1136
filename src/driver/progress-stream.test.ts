import { expect, test } from "bun:test";
import { FakeClock } from "../common/fake-clock.ts";
import { formatBytes, formatDuration, TransferProgress } from "./progress-stream.ts";

function terminal(isTTY: boolean, columns = 80) {
  const writes: string[] = [];
  return { writes, out: { isTTY, columns, write: (s: string) => (writes.push(s), true) } };
}

const MiB = 2 ** 20;

test("on a terminal, one line redrawn in place with size, percentage, rate and time left", () => {
  const t = terminal(true);
  const clock = new FakeClock(0);
  const p = new TransferProgress({ label: "flash disk.img", total: 1000 * MiB }, t.out, true, clock);
  p.update(10 * MiB);
  clock.advance(200);
  expect(t.writes).toEqual(["\r\x1b[2Kflash disk.img  10.0 MiB / 1000.0 MiB  1%  0 B/s"]);
  p.update(30 * MiB);
  clock.advance(200);
  // 20 MiB in the last 200 ms: 100 MiB/s, and the 970 MiB left take 9.7 s.
  expect(t.writes.at(-1)).toBe("\r\x1b[2Kflash disk.img  30.0 MiB / 1000.0 MiB  3%  100.0 MiB/s  ETA 0:10");
  p.finish("gzip decompressed by the exporter");
  expect(t.writes.slice(-2)).toEqual(["\r\x1b[2K", "flash disk.img: 30.0 MiB in 0.40 s (75.0 MiB/s), gzip decompressed by the exporter\n"]);
  expect(clock.armed).toBe(0);
});

test("the rate looks back three seconds, so it follows a transfer that slows down", () => {
  const t = terminal(true);
  const clock = new FakeClock(0);
  const p = new TransferProgress({ label: "dump" }, t.out, true, clock);
  for (let s = 1; s <= 10; s++) {
    p.update(Math.min(s, 5) * 10 * MiB);
    clock.advance(1000);
  }
  // Nothing moved for the last five seconds: the window holds only those.
  expect(t.writes.at(-1)).toBe("\r\x1b[2Kdump  50.0 MiB  0 B/s");
  p.stop();
});

test("a line never grows wider than the terminal", () => {
  const t = terminal(true, 30);
  const clock = new FakeClock(0);
  const p = new TransferProgress({ label: "flash a-very-long-image-name-indeed.img" }, t.out, true, clock);
  p.update(5);
  clock.advance(200);
  p.stop();
  expect(t.writes[0]).toBe("\r\x1b[2Kflash a-very-long-image-name-");
});

test("elsewhere, nothing but the summary line", () => {
  const t = terminal(false);
  const clock = new FakeClock(0);
  const p = new TransferProgress({ label: "dump disk.img" }, t.out, undefined, clock);
  expect(clock.armed).toBe(0);
  p.update(2048);
  clock.advance(500);
  p.finish();
  p.finish();
  expect(t.writes).toEqual(["dump disk.img: 2.0 KiB in 0.50 s (4.0 KiB/s)\n"]);
});

test("stopping after a failure clears the line, stops redrawing and prints nothing more", () => {
  const t = terminal(true);
  const clock = new FakeClock(0);
  const p = new TransferProgress({ label: "x", total: 10 }, t.out, true, clock);
  clock.advance(200);
  p.stop();
  p.finish();
  clock.advance(1000);
  expect(t.writes).toEqual(["\r\x1b[2Kx  0 B / 10 B  0%  0 B/s", "\r\x1b[2K"]);
  expect(clock.armed).toBe(0);
});

test("units", () => {
  expect(formatBytes(512)).toBe("512 B");
  expect(formatBytes(256 * MiB)).toBe("256.0 MiB");
  expect(formatBytes(1.5 * 2 ** 30)).toBe("1.5 GiB");
  expect(formatDuration(59.2)).toBe("1:00");
  expect(formatDuration(61)).toBe("1:01");
  expect(formatDuration(3725)).toBe("1:02:05");
});
