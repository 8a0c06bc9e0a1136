/**
 * Sends one lease's captured console output to the controller (ConsoleLogService.Append,
 * one call at a time), which keeps the newest part of it for `jmp lease logs`.
 *
 * Memory stays bounded whatever the board prints: output not yet sent is held up to
 * half of `keepBytes` per console (the exporter config's consoleCapture.maxBytes) in
 * a ring (byte-ring.ts), and when the controller cannot take it as fast as it comes the oldest unsent bytes are dropped,
 * which are the ones the controller would cut away first anyway. How many were
 * dropped goes with the next message (`dropped`), and the controller marks the gap. A controller
 * without the service (upstream's) is asked once; capture then stops for the lease.
 */
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { AppendRequestSchema, ConsoleLogService } from "../gen/jumpstarter/console/v1/console_pb.ts";
import type { Logger } from "../common/log.ts";
import { ByteRing } from "./byte-ring.ts";

/** Output sent in one message, at most (64 KiB measured 10-25 MiB less exporter RSS under a flood than 256 KiB). */
const MESSAGE_BYTES = 64 * 1024;
const RETRY_MS = 1_000;
/** How long the end of a lease waits for the last output to reach the controller. */
const FLUSH_MS = 5_000;

type Message = MessageInitShape<typeof AppendRequestSchema>;

/**
 * Every chunk a console prints arrives as a fresh buffer (Bun's socket and file
 * reads allocate one per read) and is garbage once copied into the ring. JSC frees
 * such buffers only at a full collection, and left to itself lets 40-60 MiB of them
 * pile up under a flood (bench/console-capture.ts); its eden collections and Bun's
 * asynchronous one did not free them. So the capture runs a synchronous full
 * collection every COLLECT_EVERY_BYTES captured: the garbage stays under that. Only
 * a flood pays: ~33 a second at 100 MB/s (the exporter then uses ~45% of a core),
 * one every five minutes at 115200 baud. 3 MiB measured 23-24 MiB peak growth where
 * 4 MiB gave 26-28, against a budget of 28 (bench/README.md).
 */
const COLLECT_EVERY_BYTES = 3 * 2 ** 20;
/**
 * What one lease sends at most, per second. A console at 115200 baud prints 11 KB/s,
 * one at 12 Mbaud 1.2 MB/s; a board flooding faster than this has its oldest unsent
 * output dropped (the gap is marked), as the controller would cut it away anyway (it
 * keeps the newest maxBytes). Every message sent is garbage too (its copies through
 * protobuf, Connect and HTTP/2): 4 MiB/s measured ~5 MiB less exporter RSS under a
 * flood than 8.
 */
const MAX_SEND_BYTES_PER_S = 4 * 2 ** 20;
const collectGarbage = (): void => (globalThis as { Bun?: { gc(sync: boolean): void } }).Bun?.gc(true);

export class ConsolePush {
  /**
   * Each console's output not yet sent, the newest half keepBytes of it. Half: after a
   * flood the ring's content arrives whole, just after the mark of the gap before it,
   * and the controller keeps the newest keepBytes, so that mark is still in view.
   */
  private readonly rings = new Map<string, ByteRing>();
  private readonly drivers = new Set<string>();
  /** Per console: how much of its ring's `dropped` the controller has been told of. */
  private readonly told = new Map<string, number>();
  /** Per console: bytes of messages that failed, not yet told (they were lost at the spot the next message starts). */
  private readonly lost = new Map<string, number>();
  private sinceCollect = 0;
  private finishing = false;
  private stopped = false;
  private wake?: () => void;
  private readonly sending: Promise<void>;

  constructor(
    private readonly client: Client<typeof ConsoleLogService>,
    private readonly lease: string,
    private readonly keepBytes: number,
    private readonly log: Logger,
  ) {
    this.sending = this.run();
  }

  /** Bytes held, not yet sent. */
  get held(): number {
    let n = 0;
    for (const r of this.rings.values()) n += r.length;
    return n;
  }

  /** Bytes dropped because the controller fell behind. */
  get dropped(): number {
    let n = 0;
    for (const r of this.rings.values()) n += r.dropped;
    return n;
  }

  /**
   * The console's bytes dropped since its last message, all just before what it sends
   * next: the ring drops its oldest bytes, which follow what was read last, and a
   * failed message's bytes preceded what the ring holds. Counted as told.
   */
  private gap(driver: string): number {
    const dropped = this.rings.get(driver)?.dropped ?? 0;
    const n = dropped - (this.told.get(driver) ?? 0) + (this.lost.get(driver) ?? 0);
    this.told.set(driver, dropped);
    this.lost.delete(driver);
    return n;
  }

  output(driver: string, data: Uint8Array): void {
    if (this.stopped) return;
    // A board printing fast makes garbage as fast: see COLLECT_EVERY_BYTES.
    this.sinceCollect += data.byteLength;
    if (this.sinceCollect >= COLLECT_EVERY_BYTES) {
      this.sinceCollect = 0;
      collectGarbage();
    }
    this.drivers.add(driver);
    let ring = this.rings.get(driver);
    if (!ring) this.rings.set(driver, (ring = new ByteRing(Math.ceil(this.keepBytes / 2))));
    // Copied into the ring: the device's buffer is free as soon as this returns.
    ring.write(data);
    this.poke();
  }

  private poke(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  /** Some console with output not yet sent, if any. */
  private next(): [string, ByteRing] | undefined {
    for (const entry of this.rings) if (entry[1].length > 0) return entry;
    return undefined;
  }

  private async run(): Promise<void> {
    let warned = false;
    for (;;) {
      if (this.stopped) return;
      let message: Message | undefined;
      const ready = this.next();
      if (ready) {
        const [driver, ring] = ready;
        const dropped = BigInt(this.gap(driver));
        message = { lease: this.lease, driver, dropped, data: ring.read(MESSAGE_BYTES), keepBytes: BigInt(this.keepBytes) };
        // Round robin: this console goes after the others.
        this.rings.delete(driver);
        this.rings.set(driver, ring);
      } else if (this.finishing) {
        if (this.drivers.size === 0) return;
        const driver = this.drivers.values().next().value!;
        message = { lease: this.lease, driver, dropped: BigInt(this.gap(driver)), done: true, keepBytes: BigInt(this.keepBytes) };
      } else {
        await new Promise<void>((resolve) => (this.wake = resolve));
        continue;
      }
      try {
        // Awaited: the next message waits for this one's answer, so at most one is in flight.
        const started = performance.now();
        await this.client.append(message);
        const size = message.data?.byteLength ?? 0;
        const due = (size / MAX_SEND_BYTES_PER_S) * 1000 - (performance.now() - started);
        if (due > 1) await new Promise((r) => setTimeout(r, due));
        if (message.done) this.drivers.delete(message.driver!);
        warned = false;
      } catch (e) {
        const err = ConnectError.from(e);
        if (err.code === Code.Unimplemented) {
          this.log.info(`lease ${this.lease}: the controller does not keep console output (no ConsoleLogService); not sending it`);
          this.stop();
          return;
        }
        if (!warned) this.log.warn(`lease ${this.lease}: cannot send console output to the controller (${err.rawMessage}); retrying`);
        warned = true;
        // The message is lost, and told with the next one; what comes next is kept (bounded) until the controller answers again.
        const driver = message.driver!;
        this.lost.set(driver, (this.lost.get(driver) ?? 0) + Number(message.dropped ?? 0n) + (message.data?.byteLength ?? 0));
        await new Promise((r) => setTimeout(r, RETRY_MS));
      }
    }
  }

  private stop(): void {
    this.stopped = true;
    this.rings.clear();
    this.poke();
  }

  /** Sends what is left and the end of each driver's output; gives up after FLUSH_MS. */
  async finish(): Promise<void> {
    this.finishing = true;
    this.poke();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, FLUSH_MS)));
    await Promise.race([this.sending, late]);
    clearTimeout(timer);
    this.stop();
  }
}
