/**
 * The newest `capacity` bytes written, in one buffer that grows (doubling) up to
 * `capacity` and is then reused: holding output costs exactly what is held, and none
 * of the writers' own buffers stay alive through it.
 */
export class ByteRing {
  private buf = new Uint8Array(0);
  private start = 0;
  private size = 0;
  /** Bytes overwritten before they were read. */
  dropped = 0;

  constructor(readonly capacity: number) {}

  get length(): number {
    return this.size;
  }

  write(data: Uint8Array): void {
    const cap = this.capacity;
    if (data.byteLength >= cap) {
      this.dropped += this.size + data.byteLength - cap;
      this.ensure(cap);
      this.buf.set(data.subarray(data.byteLength - cap), 0);
      this.start = 0;
      this.size = cap;
      return;
    }
    this.ensure(Math.min(cap, this.size + data.byteLength));
    const room = this.buf.byteLength;
    const over = this.size + data.byteLength - room;
    if (over > 0) {
      this.start = (this.start + over) % room;
      this.size -= over;
      this.dropped += over;
    }
    const end = (this.start + this.size) % room;
    const first = Math.min(data.byteLength, room - end);
    this.buf.set(data.subarray(0, first), end);
    if (first < data.byteLength) this.buf.set(data.subarray(first), 0);
    this.size += data.byteLength;
  }

  /** Takes up to `max` of the oldest bytes held, as a new array. */
  read(max: number): Uint8Array {
    const n = Math.min(max, this.size);
    const out = new Uint8Array(n);
    const room = this.buf.byteLength;
    const first = Math.min(n, room - this.start);
    out.set(this.buf.subarray(this.start, this.start + first), 0);
    if (first < n) out.set(this.buf.subarray(0, n - first), first);
    this.start = (this.start + n) % Math.max(room, 1);
    this.size -= n;
    return out;
  }

  /** Room for `need` bytes at least (up to capacity), keeping what is held in order. */
  private ensure(need: number): void {
    if (this.buf.byteLength >= need) return;
    let room = Math.max(64 * 1024, this.buf.byteLength);
    while (room < need) room *= 2;
    room = Math.min(room, this.capacity);
    const held = this.read(this.size);
    this.buf = new Uint8Array(room);
    this.buf.set(held, 0);
    this.start = 0;
    this.size = held.byteLength;
  }
}
