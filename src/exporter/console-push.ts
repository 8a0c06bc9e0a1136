/**
 * Sends one lease's captured console output to the controller (ConsoleLogService.Append,
 * one client stream per lease), which keeps the newest part of it for `jmp lease logs`.
 *
 * Memory stays bounded whatever the board prints: output not yet sent is held up to
 * `keepBytes` (the exporter config's consoleCapture.maxBytes), and when the
 * controller cannot take it as fast as it comes the oldest unsent bytes are dropped,
 * which are the ones the controller would cut away first anyway. A controller
 * without the service (upstream's) is asked once; capture then stops for the lease.
 */
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { AppendRequestSchema, ConsoleLogService } from "../gen/jumpstarter/console/v1/console_pb.ts";
import type { Logger } from "../common/log.ts";

/** Output sent in one message, at most. */
const MESSAGE_BYTES = 256 * 1024;
const RETRY_MS = 1_000;
/** How long the end of a lease waits for the last output to reach the controller. */
const FLUSH_MS = 5_000;

type Message = MessageInitShape<typeof AppendRequestSchema>;

export class ConsolePush {
  private readonly pending: { driver: string; data: Uint8Array }[] = [];
  private pendingBytes = 0;
  /** Bytes dropped because the controller fell behind. */
  dropped = 0;
  private readonly drivers = new Set<string>();
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
    return this.pendingBytes;
  }

  output(driver: string, data: Uint8Array): void {
    if (this.stopped) return;
    this.drivers.add(driver);
    // The fan-out hands out the device's own chunk: keep a copy of it.
    this.pending.push({ driver, data: data.slice() });
    this.pendingBytes += data.byteLength;
    while (this.pendingBytes > this.keepBytes && this.pending.length) {
      const first = this.pending[0]!;
      const over = this.pendingBytes - this.keepBytes;
      if (first.data.byteLength <= over) {
        this.pending.shift();
        this.pendingBytes -= first.data.byteLength;
        this.dropped += first.data.byteLength;
      } else {
        first.data = first.data.subarray(over);
        this.pendingBytes -= over;
        this.dropped += over;
      }
    }
    this.poke();
  }

  private poke(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  /** The next message: consecutive output of one driver, up to MESSAGE_BYTES. */
  private take(): Message {
    const driver = this.pending[0]!.driver;
    const parts: Uint8Array[] = [];
    let size = 0;
    while (this.pending.length && this.pending[0]!.driver === driver && size < MESSAGE_BYTES) {
      const c = this.pending[0]!;
      const room = MESSAGE_BYTES - size;
      if (c.data.byteLength <= room) {
        parts.push(c.data);
        this.pending.shift();
      } else {
        parts.push(c.data.subarray(0, room));
        c.data = c.data.subarray(room);
      }
      size += parts.at(-1)!.byteLength;
    }
    this.pendingBytes -= size;
    return { lease: this.lease, driver, data: parts.length === 1 ? parts[0] : Buffer.concat(parts), keepBytes: BigInt(this.keepBytes) };
  }

  private async *messages(): AsyncGenerator<Message> {
    for (;;) {
      while (this.pending.length) yield this.take();
      if (this.finishing) {
        for (const driver of this.drivers) yield { lease: this.lease, driver, done: true, keepBytes: BigInt(this.keepBytes) };
        return;
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  private async run(): Promise<void> {
    let warned = false;
    while (!this.stopped) {
      // Nothing to send yet: no stream (most leases of a board without a console).
      if (!this.pending.length && !this.finishing) await new Promise<void>((resolve) => (this.wake = resolve));
      if (!this.pending.length && this.finishing && this.drivers.size === 0) return;
      try {
        await this.client.append(this.messages());
        return;
      } catch (e) {
        const err = ConnectError.from(e);
        if (err.code === Code.Unimplemented) {
          this.log.info(`lease ${this.lease}: the controller does not keep console output (no ConsoleLogService); not sending it`);
          this.stop();
          return;
        }
        if (!warned) this.log.warn(`lease ${this.lease}: cannot send console output to the controller (${err.rawMessage}); retrying`);
        warned = true;
        if (this.finishing && this.stopped) return;
        await new Promise((r) => setTimeout(r, RETRY_MS));
      }
    }
  }

  private stop(): void {
    this.stopped = true;
    this.pending.length = 0;
    this.pendingBytes = 0;
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
