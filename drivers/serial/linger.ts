/**
 * Tearing a stream down right after the last write (an HTTP/2 reset) can drop bytes
 * still queued on the way to the exporter, and a serial port never says it is done.
 * So after its final write a client half-closes, then keeps the stream this long
 * (or until it ends) before tearing it down.
 */
export const LINGER_MS = 300;

export async function linger(ended: Promise<unknown>): Promise<void> {
  let timer: Timer | undefined;
  await Promise.race([ended.catch(() => {}), new Promise((r) => (timer = setTimeout(r, LINGER_MS)))]);
  clearTimeout(timer);
}
