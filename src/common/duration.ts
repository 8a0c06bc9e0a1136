/**
 * Durations as users type them: `90` (seconds), `90s`, `30m`, `1h30m`, `1d`,
 * ISO-8601 `PT1H30M` / `P1DT2H`, and clock form `01:30:00` or `1:30`. Returns
 * milliseconds.
 */
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

export function parseDuration(text: string, what = "duration"): number {
  const s = text.trim();
  const bad = () =>
    new RangeError(`'${what}' must be a duration such as 90s, 30m, 1h30m, 1d, PT1H or 01:30:00: got '${text}'`);
  if (s === "") throw bad();
  let ms: number | undefined;
  if (/^\d+(\.\d+)?$/.test(s)) {
    ms = Number(s) * 1000;
  } else if (/^(\d+(\.\d+)?(ms|s|m|h|d|w))+$/i.test(s)) {
    ms = 0;
    for (const [, n, unit] of s.toLowerCase().matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/g)) {
      ms += Number(n) * UNIT_MS[unit!]!;
    }
  } else if (/^P/i.test(s)) {
    const m = /^P(?:(\d+(?:\.\d+)?)W)?(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$/i.exec(s);
    if (!m || s.toUpperCase() === "P" || s.toUpperCase().endsWith("T")) throw bad();
    const [, w, d, h, min, sec] = m.map((x) => (x === undefined ? 0 : Number(x)));
    ms = (w! * 7 * 86400 + d! * 86400 + h! * 3600 + min! * 60 + sec!) * 1000;
  } else if (/^\d+:\d{1,2}(:\d{1,2}(\.\d+)?)?$/.test(s)) {
    const parts = s.split(":").map(Number);
    const [h, m, sec] = parts.length === 3 ? parts : [0, parts[0], parts[1]];
    ms = (h! * 3600 + m! * 60 + sec!) * 1000;
  }
  if (ms === undefined || !Number.isFinite(ms)) throw bad();
  return Math.round(ms);
}

/** `5400000` → `1h30m`; sub-second values keep their milliseconds. */
export function formatDuration(ms: number): string {
  if (ms < 0) return `-${formatDuration(-ms)}`;
  if (ms < 1000) return `${Math.round(ms)}ms`;
  let rest = Math.round(ms / 1000);
  const parts: string[] = [];
  for (const [unit, size] of [["d", 86400], ["h", 3600], ["m", 60], ["s", 1]] as const) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  return parts.join("");
}
