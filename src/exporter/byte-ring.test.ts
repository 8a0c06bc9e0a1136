import { expect, test } from "bun:test";
import { ByteRing } from "./byte-ring.ts";

test("a ByteRing keeps the newest bytes in order, counts what it dropped, and reads across its wrap", () => {
  const r = new ByteRing(100);
  // The model: an array holding exactly what the ring should hold.
  const model: number[] = [];
  let dropped = 0;
  let n = 0;
  for (const step of [30, 50, -25, 40, 7, -60, 99, 1, -3, 250, 3, -100]) {
    if (step < 0) {
      expect([...r.read(-step)]).toEqual(model.splice(0, -step));
      continue;
    }
    const chunk = Uint8Array.from({ length: step }, () => n++ % 251);
    r.write(chunk);
    model.push(...chunk);
    while (model.length > 100) {
      model.shift();
      dropped++;
    }
    expect(r.length).toBe(model.length);
  }
  expect(r.length).toBe(0);
  expect(r.dropped).toBe(dropped);
});
