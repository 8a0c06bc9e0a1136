import { expect, test } from "bun:test";
import { formatTransfer, parseSize, sizeField } from "./units.ts";

test("sizes as configs write them: bytes, or binary units as qemu-img takes them", () => {
  expect(parseSize(4096)).toBe(4096);
  expect(parseSize("4096")).toBe(4096);
  expect(parseSize("512K")).toBe(512 * 1024);
  expect(parseSize("4M")).toBe(4 * 2 ** 20);
  expect(parseSize("8G")).toBe(8 * 2 ** 30);
  expect(parseSize("8GiB")).toBe(8 * 2 ** 30);
  expect(parseSize("1.5g")).toBe(1.5 * 2 ** 30);
  expect(parseSize("2 TB")).toBe(2 * 2 ** 40);
  for (const bad of ["", "G", "-1", "4X", "1.5", 1.5, -3, true, null]) expect(parseSize(bad)).toBeUndefined();
});

test("a size field says what it expected, with the key path", () => {
  const field = sizeField({ min: 4096, max: 2 ** 20 });
  expect(field.parse("64K", "storage.block_size")).toBe(65536);
  expect(() => field.parse("2M", "storage.block_size")).toThrow(
    'storage.block_size: expected a size in bytes from 4.0 KiB to 1.0 MiB (a number, or with a unit: 512K, 4M, 8G), got "2M"',
  );
});

test("a transfer reads as size, time and rate", () => {
  expect(formatTransfer(256 * 2 ** 20, 2)).toBe("256.0 MiB in 2.00 s (128.0 MiB/s)");
  // Hundredths under 10 s (a 0.53 s flash is not "0.5 s"), tenths from there on.
  expect(formatTransfer(512 * 2 ** 20, 0.534)).toBe("512.0 MiB in 0.53 s (958.8 MiB/s)");
  expect(formatTransfer(2 ** 30, 12.345)).toBe("1.0 GiB in 12.3 s (82.9 MiB/s)");
});
