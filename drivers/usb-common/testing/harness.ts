/**
 * For driver tests: one driver served in a child process under simulated USB
 * devices (testing/umockdev-usb.py), driven with its client over the session
 * socket as `j` would, while the simulation logs what reached each device.
 */
import { expect } from "bun:test";
import { join } from "node:path";
import type { DriverClient } from "@jumpstarter/driver";
import { registerBuiltinClients } from "../../catalog.ts";
import { connectSession, type ConnectedSession } from "../../../src/client/session-client.ts";
import { sessionConnection } from "../../../src/client/transport.ts";
import { ConnectPortal } from "../../../src/driver/portal.ts";
import { AllowList, ClientRegistry } from "../../../src/driver/registry.ts";
import { UsbSim, type DeviceSpec } from "./sim.ts";

const SERVE = join(import.meta.dir, "serve-driver.ts");

export interface Started<C extends DriverClient = DriverClient> {
  sim: UsbSim;
  client: C;
  session: ConnectedSession;
  /** The driver's log lines during calls (the session's log stream, as `jmp shell --exporter-logs` shows), as they come. */
  logs: string[];
}

export class DriverHarness {
  private running: { sim: UsbSim; session?: ConnectedSession; stopLogs?: AbortController }[] = [];

  /** `module` is the driver file's path, `name` its class. */
  constructor(private readonly module: string) {}

  launch(name: string, config: Record<string, unknown>, devices: DeviceSpec[], opts: { runAs?: string } = {}): UsbSim {
    const sim = new UsbSim(devices, [process.execPath, SERVE, JSON.stringify({ module: this.module, class: name, config })], opts);
    this.running.push({ sim });
    return sim;
  }

  /** Starts the driver and connects its client; fails with the driver's error if it does not start. */
  async start<C extends DriverClient = DriverClient>(name: string, config: Record<string, unknown>, devices: DeviceSpec[], opts: { runAs?: string } = {}): Promise<Started<C>> {
    const sim = this.launch(name, config, devices, opts);
    const out = await sim.waitForOutput((l) => (l.startsWith("{") ? (JSON.parse(l) as { socket?: string; error?: string }) : undefined), "the driver to serve");
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
    return { sim, client: session.root as C, session, logs };
  }

  /** The message a driver fails to start with (its constructor's error), and the simulation it ran under. */
  async startError(name: string, config: Record<string, unknown>, devices: DeviceSpec[], opts: { runAs?: string } = {}): Promise<{ message: string; sim: UsbSim }> {
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

export async function caught(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected a failure, and it succeeded");
}

/**
 * Waits for the driver's log line on stderr (`level name: message`; those it writes
 * while it starts) that contains `text`, and returns it. stderr is a pipe of its own,
 * so such a line may come after the driver has begun to serve.
 */
export function logged(sim: UsbSim, text: string): Promise<string> {
  return sim.waitForOutput((l) => (l.includes(text) ? l : undefined), `a log line with "${text}"`);
}
