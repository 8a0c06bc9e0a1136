/**
 * For end-to-end tests on simulated hardware (gpio.test.ts, usb.test.ts): dist/jmp as a
 * user runs it, `jmp shell --exporter-config lab.yaml -- sh -c SCRIPT`, under a umockdev
 * simulation of the devices (drivers/testing/umockdev-sim.ts). Registers the hooks that
 * require dist/jmp and remove each test's simulations and folder after it.
 *
 * @example
 * const shells = simulatedShells("jmp-gpio-", gpioChips, missing);
 * const sim = shells.run("j power on", [PI], LAB);
 * expect(await sim.proc.exited).toBe(0);
 */
import { afterEach, beforeAll } from "bun:test";
import { existsSync } from "node:fs";
import type { Simulate } from "../src/testing/driver-harness.ts";
import type { UmockdevSim } from "../drivers/testing/umockdev-sim.ts";
import { JMP, tempDir } from "./helpers.ts";

export interface SimulatedShells<S, D> {
  /** This test's folder (made on first use), where lab.yaml goes. */
  readonly dir: ReturnType<typeof tempDir>;
  /** Starts `jmp shell` with `lab` as its exporter config, under `devices`; `wrap` goes before jmp on the command line. */
  run(script: string, devices: D, lab: string, wrap?: string[]): S;
}

/** `missing`: why the simulation cannot run here (then dist/jmp is not required either). */
export function simulatedShells<S extends UmockdevSim<unknown>, D>(prefix: string, simulate: Simulate<S, D>, missing: string | undefined): SimulatedShells<S, D> {
  let dir: ReturnType<typeof tempDir> | undefined;
  let sims: S[] = [];
  beforeAll(() => {
    if (!missing && !existsSync(JMP)) throw new Error(`${JMP} is missing: build it with 'bun scripts/build.ts' (npm test does)`);
  });
  afterEach(async () => {
    for (const s of sims) await s.close();
    sims = [];
    dir?.remove();
    dir = undefined;
  });
  return {
    get dir() {
      return (dir ??= tempDir(prefix));
    },
    run(script, devices, lab, wrap = []) {
      const command = [...wrap, JMP, "shell", "--exporter-config", this.dir.file("lab.yaml", lab), "--", "sh", "-c", script];
      const sim = simulate(devices, command, { env: userEnv() });
      sims.push(sim);
      return sim;
    },
  };
}

/** Our environment without what would point jmp or j elsewhere. */
function userEnv(): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = { ...process.env, NO_COLOR: "1" };
  for (const k of Object.keys(out)) if (k.startsWith("JMP_") || k.startsWith("JUMPSTARTER_")) delete out[k];
  return out;
}
