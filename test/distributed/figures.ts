/** Measurements the distributed tests print for the report (never asserted: machines differ). */
import type { Lab } from "./lab.ts";

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return Math.round(sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2);
}

/**
 * Runs `j power on` `times` times in one `jmp shell` (opened with `shellArgs`) and
 * returns the milliseconds per call, timed inside the shell so that leasing and
 * starting the session are not counted.
 */
export async function powerLoop(lab: Lab, shellArgs: string[], times: number): Promise<number> {
  const script = `s=$(date +%s%N); i=0; while [ $i -lt ${times} ]; do j power on || exit 1; i=$((i+1)); done; e=$(date +%s%N); echo "loop_ns=$((e-s))"`;
  const r = await lab.jmp([...shellArgs, "--", "sh", "-c", script], { timeoutMs: 60_000 });
  const m = /loop_ns=(\d+)/.exec(r.stdout);
  if (r.code !== 0 || !m) throw new Error(`the j power loop failed (exit ${r.code}):\n${r.stderr}${r.stdout}`);
  return Number(m[1]) / 1e6 / times;
}
