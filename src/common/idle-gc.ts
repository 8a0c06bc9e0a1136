/**
 * One full garbage collection when a burst of work is over. JavaScriptCore lets its
 * heap grow while a process is busy and gives the pages back only after a full
 * collection, which an idle process may not get for a long time: an exporter that
 * answered 100 000 driver calls sat 5–26 MiB above where it started (bench/README.md,
 * "Growth"), on a board that may have 1 GiB. Here, once QUIET_MS pass with no work
 * after at least MIN_WORK units of it, `Bun.gc(true)` runs once: a few milliseconds per
 * burst, nothing while busy, nothing while idle.
 */
const QUIET_MS = 1000;
const MIN_WORK = 500;

let work = 0;
let seen = 0;
let timer: ReturnType<typeof setInterval> | undefined;

/** Counts one unit of work (a driver call); the first starts the (unref'd) watch. */
export function noteWork(): void {
  work++;
  if (timer) return;
  timer = setInterval(check, QUIET_MS);
  timer.unref();
}

function check(): void {
  if (work !== seen) {
    seen = work;
    return;
  }
  if (work >= MIN_WORK) Bun.gc(true);
  work = 0;
  seen = 0;
}
