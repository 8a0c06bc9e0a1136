/** A small typed event emitter; a throwing listener is logged and does not stop the others. */
import { getLogger } from "../common/log.ts";
import { logUnexpected } from "./errors.ts";

const log = getLogger("controller");

export class Emitter<Events extends object> {
  private readonly listeners = new Map<keyof Events, Set<(value: never) => void>>();

  /** Returns the unsubscribe function. */
  on<K extends keyof Events>(event: K, fn: (value: Events[K]) => void): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(fn);
    return () => set.delete(fn);
  }

  emit<K extends keyof Events>(event: K, value: Events[K]): void {
    for (const fn of this.listeners.get(event) ?? []) {
      try {
        (fn as (value: Events[K]) => void)(value);
      } catch (err) {
        logUnexpected(log, `a '${String(event)}' listener failed`, err);
      }
    }
  }
}
