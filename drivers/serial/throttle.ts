/**
 * Slows writes down to `cps` characters (bytes) per second, for devices that drop
 * input sent faster than someone typing (upstream's `cps` option).
 */
export function throttled(inner: WritableStream<Uint8Array>, cps: number): WritableStream<Uint8Array> {
  const writer = inner.getWriter();
  const gapMs = 1000 / cps;
  let next = 0;
  return new WritableStream<Uint8Array>({
    async write(chunk) {
      for (let i = 0; i < chunk.byteLength; i++) {
        // Each byte has a planned time; planning from it rather than from when the timer
        // actually fired keeps timer lateness from adding up.
        const now = performance.now();
        if (next > now) await Bun.sleep(next - now);
        await writer.write(chunk.subarray(i, i + 1));
        next = Math.max(next, now) + gapMs;
      }
    },
    close: () => writer.close(),
    abort: (reason) => writer.abort(reason),
  });
}
