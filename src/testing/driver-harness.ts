/**
 * For driver tests: one driver served in a child process under simulated devices
 * (umockdev-sim.ts), driven with its client over the session socket as `j` would,
 * while the simulation logs what reached each device.
 *
 * @example
 * const harness = new DriverHarness(join(import.meta.dir, "driver.ts"), usbDevices);
 * afterEach(() => harness.closeAll());
 * const { sim, client } = await harness.start<PowerClient>("UsbHubPort", { location: "1-1.2" }, BENCH);
 */
import { expect } from "bun:test";
import { join } from "node:path";
import type { DriverClient } from "@jumpstarter/driver";
import { registerBuiltinClients } from "../../drivers/catalog.ts";
import { connectSession, type ConnectedSession } from "../client/session-client.ts";
import { sessionConnection } from "../client/transport.ts";
import { ConnectPortal } from "../driver/portal.ts";
import { AllowList, ClientRegistry } from "../driver/registry.ts";
import type { SimOptions, UmockdevSim } from "../../drivers/testing/umockdev-sim.ts";

const SERVE = join(import.meta.dir, "serve-driver.ts");

/** Starts a command under a simulation of `devices` (GpioSim's chips, UsbSim's devices). */
export type Simulate<S, D> = (devices: D, command: string[], opts: SimOptions) => S;

export interface Started<S, C extends DriverClient = DriverClient> {
  sim: S;
  client: C;
  session: ConnectedSession;
  /** The process serving the driver. */
  pid: number;
  /** The driver's log lines during calls (the session's log stream, as `jmp shell --exporter-logs` shows), as they come. */
  logs: string[];
}

export class DriverHarness<S extends UmockdevSim<unknown>, D> {
  private running: { sim: S; session?: ConnectedSession; stopLogs?: AbortController }[] = [];

  /** `module` is the driver file's path; `simulate` starts the simulation it runs under. */
  constructor(
    private readonly module: string,
    private readonly simulate: Simulate<S, D>,
  ) {}

  /** Every simulation launched since the last closeAll, in order. */
  get sims(): S[] {
    return this.running.map((r) => r.sim);
  }

  launch(name: string, config: Record<string, unknown>, devices: D, opts: Omit<SimOptions, "env"> = {}): S {
    const sim = this.simulate(devices, [process.execPath, SERVE, JSON.stringify({ module: this.module, class: name, config })], opts);
    this.running.push({ sim });
    return sim;
  }

  /** Starts the driver and connects its client; fails with the driver's error if it does not start. */
  async start<C extends DriverClient = DriverClient>(name: string, config: Record<string, unknown>, devices: D, opts: Omit<SimOptions, "env"> = {}): Promise<Started<S, C>> {
    const sim = this.launch(name, config, devices, opts);
    const out = await sim.waitForOutput((l) => (l.startsWith("{") ? (JSON.parse(l) as { socket?: string; pid?: number; error?: string }) : undefined), "the driver to serve");
    if (out.error) throw new Error(`the driver did not start: ${out.error}\n${sim.output.join("\n")}`);
    const session = await connectSession({ host: out.socket! }, registerBuiltinClients(new ClientRegistry()), new AllowList([], true));
    const stopLogs = new AbortController();
    Object.assign(this.running.at(-1)!, { session, stopLogs });
    const logs: string[] = [];
    const portal = new ConnectPortal(sessionConnection({ host: out.socket! }));
    void (async () => {
      try {
        for await (const r of portal.exporter.logStream({}, { signal: stopLogs.signal })) logs.push(r.message);
      } catch {
        // the session ended
      }
    })();
    return { sim, client: session.root as C, session, pid: out.pid!, logs };
  }

  /** The message a driver fails to start with (its constructor's error), and the simulation it ran under. */
  async startError(name: string, config: Record<string, unknown>, devices: D, opts: Omit<SimOptions, "env"> = {}): Promise<{ message: string; sim: S }> {
    const sim = this.launch(name, config, devices, opts);
    const out = await sim.waitForOutput((l) => (l.startsWith("{") ? (JSON.parse(l) as { error?: string; socket?: string }) : undefined), "the driver's answer");
    if (!out.error) throw new Error(`the driver started (${out.socket}) where it should have failed`);
    expect(await sim.stop()).toBe(2);
    return { message: out.error, sim };
  }

  async closeAll(): Promise<void> {
    for (const r of this.running) {
      r.stopLogs?.abort();
      r.session?.close();
      await r.sim.close();
    }
    this.running = [];
  }
}

/**
 * Waits for the driver's log line on stderr (`level name: message`; those it writes
 * while it starts) that contains `text`, and returns it. stderr is a pipe of its own,
 * so such a line may come after the driver has begun to serve.
 */
export function logged(sim: UmockdevSim<unknown>, text: string): Promise<string> {
  return sim.waitForOutput((l) => (l.includes(text) ? l : undefined), `a log line with "${text}"`);
}
