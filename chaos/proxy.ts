/**
 * The fault proxy between two roles: the repo's TCP relay (src/router/test-router.ts
 * `tcpRelay`: pause, drop, delay per direction, reset, black hole), named after the
 * path it stands on and counting the faults it injects, for the table.
 */
import { type RelayDirection, tcpRelay, type TcpRelay } from "../src/router/test-router.ts";

export class FaultProxy {
  /** Faults injected so far (a heal is not one). */
  faults = 0;

  private constructor(
    /** The path it stands on: "exporter ↔ controller". */
    readonly path: string,
    private readonly relay: TcpRelay,
  ) {}

  static async start(path: string, target: string): Promise<FaultProxy> {
    return new FaultProxy(path, await tcpRelay(target));
  }

  /** HOST:PORT to give the role instead of the target. */
  get endpoint(): string {
    return this.relay.endpoint;
  }

  /** Connections through it now. */
  get open(): number {
    return this.relay.open();
  }

  /** Stalls the bytes (TCP flow control holds the sender) until `heal`. */
  pause(direction: RelayDirection = "both"): void {
    this.faults++;
    this.relay.set("pause", { direction });
  }

  /** Each chunk arrives `ms` late, in order, until `heal`. */
  delay(ms: number, direction: RelayDirection = "both"): void {
    this.faults++;
    this.relay.set({ delayMs: ms }, { direction });
  }

  /** The connections open now go silent both ways, closes included (a pulled cable); new ones pass. */
  blackhole(): number {
    this.faults++;
    const n = this.relay.open();
    this.relay.set("drop", { onlyOpen: true });
    return n;
  }

  /** TCP RST to both ends of every connection open now; returns how many. */
  reset(): number {
    this.faults++;
    return this.relay.reset();
  }

  heal(): void {
    this.relay.set("pass");
  }

  close(): Promise<void> {
    return this.relay.close();
  }
}
