/**
 * Serves "@jumpstarter/driver" to driver files loaded from disk. The module they
 * get is the very object jmp runs on, not a copy, so their classes extend our
 * Driver (`instanceof` holds) and their markers are the ones our dispatcher reads.
 * A runtime plugin works inside the compiled executable, so a driver file needs
 * no build step and no node_modules.
 */
import * as api from "./index.ts";

export const DRIVER_MODULE = "@jumpstarter/driver";

/** The module's exported values, to tell its own classes from a file's. */
export const API_VALUES: ReadonlySet<unknown> = new Set(Object.values(api));

let installed = false;

export function provideDriverModule(): void {
  if (installed) return;
  installed = true;
  Bun.plugin({
    name: DRIVER_MODULE,
    setup(build) {
      build.module(DRIVER_MODULE, () => ({ exports: api as Record<string, unknown>, loader: "object" }));
    },
  });
}
