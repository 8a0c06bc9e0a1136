/**
 * How far a driver has read a resource the client cannot count itself, told to the
 * client as notices `x_jmp_read N` (the bytes read so far), a few times a second
 * while it reads: a file the session reads itself (local-file.ts), or data that came
 * compressed on the way (transit.ts), whose sender reads far ahead of the driver.
 * Told as reads happen, not by a timer: a resource no driver ever reads leaves
 * nothing running.
 */
import { Notices } from "../driver/byte-stream.ts";
import { readNotice } from "../driver/resource.ts";

/** At most this often while the reading goes on. */
const PROGRESS_MS = 200;

export class ReadProgress {
  readonly notices = new Notices();
  private bytes = 0;
  private toldAt = -Infinity;

  add(n: number): void {
    this.bytes += n;
    const now = performance.now();
    if (now - this.toldAt < PROGRESS_MS) return;
    this.toldAt = now;
    this.notices.tell(readNotice(this.bytes));
  }

  /** The whole count, when the reading is over. */
  end(): void {
    this.notices.tell(readNotice(this.bytes));
  }
}
