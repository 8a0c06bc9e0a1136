/**
 * Scenario 3, the file half: exporter and client configs broken at random (keys
 * deleted, renamed or added, values of the wrong type, text truncated or spliced
 * with junk, binary files, alias bombs, absurd nesting, the wrong kind) and given
 * to `jmp shell --exporter-config F -- true` and `jmp exporter list --client-config F`.
 *
 * Each run must end within its time with exit 0 (the file is still valid), or with
 * one line on stderr and no stack trace: exit 2 naming the file (and, when a key
 * was broken, a key on its path), or exit 1 for an operation that failed (a
 * client config whose token or endpoint was broken, refused by the controller).
 * The mutations come from a seeded generator; the seed is printed to replay them.
 */
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { clientConfigFile } from "../src/common/client-config.ts";
import { jmp } from "../test/helpers.ts";
import { closeLab, type Options, type Row, row, say, stackLines, startLab } from "./lib.ts";

/** A small seeded generator (mulberry32): the same seed, the same files. */
function generator(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

const EXPORTER_BASE = {
  apiVersion: "jumpstarter.dev/v1alpha1",
  kind: "ExporterConfig",
  metadata: { namespace: "default", name: "fuzz" },
  description: "a board for the fuzzer",
  export: {
    power: { type: "jumpstarter_driver_power.driver.MockPower", description: "the power switch" },
    group: {
      children: {
        inner: { type: "jumpstarter_driver_power.driver.MockPower" },
        alias: { ref: "power" },
      },
    },
    shell: { type: "jumpstarter_driver_shell.driver.Shell", config: { methods: { hello: "echo hello", bye: { command: "echo bye", timeout: 5 } } } },
  },
  hooks: { beforeLease: { script: "true", timeout: 10, onFailure: "warn" } },
  exitOnLeaseEnd: false,
};

type Doc = Record<string, unknown>;

/** Every key path of a document: ["export", "power", "type"], … */
function paths(v: unknown, at: string[] = []): string[][] {
  if (v === null || typeof v !== "object") return [];
  return Object.keys(v).flatMap((k) => [[...at, k], ...paths((v as Doc)[k], [...at, k])]);
}

function parentOf(doc: unknown, path: string[]): Doc {
  let v = doc as Doc;
  for (const k of path.slice(0, -1)) v = v[k] as Doc;
  return v;
}

const WRONG_VALUES: unknown[] = [42, -1, 1.5, true, null, [], {}, "", "x".repeat(5000), [1, 2, 3], { a: { b: 1 } }, "0x10", "-5", "  "];

interface Mutant {
  what: string;
  text: string;
  /** The key path the mutation broke, when it broke one. */
  key?: string[];
}

/** One broken file from `base` (a document), chosen by `random`. */
function mutate(base: Doc, random: () => number): Mutant {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  const doc = structuredClone(base);
  const text = stringify(base);
  const keyPaths = paths(doc);
  switch (Math.floor(random() * 12)) {
    case 0: {
      const p = pick(keyPaths);
      delete parentOf(doc, p)[p.at(-1)!];
      return { what: `without ${p.join(".")}`, text: stringify(doc), key: p };
    }
    case 1:
    case 2: {
      const p = pick(keyPaths);
      const value = pick(WRONG_VALUES);
      parentOf(doc, p)[p.at(-1)!] = value;
      return { what: `${p.join(".")} = ${JSON.stringify(value).slice(0, 30)}`, text: stringify(doc), key: p };
    }
    case 3: {
      const p = pick(keyPaths);
      const parent = parentOf(doc, p);
      parent[`${p.at(-1)!}x`] = parent[p.at(-1)!];
      delete parent[p.at(-1)!];
      return { what: `${p.join(".")} misspelt`, text: stringify(doc), key: p };
    }
    case 4: {
      const at = Math.floor(random() * text.length);
      return { what: `cut at byte ${at}`, text: text.slice(0, at) };
    }
    case 5: {
      const at = Math.floor(random() * text.length);
      const junk = Array.from({ length: 1 + Math.floor(random() * 8) }, () => pick([":", "-", "[", "{", "&", "*", "!", "|", "\t", "%", "@", "`", "\"", "'", "\n  "])).join("");
      return { what: `${JSON.stringify(junk)} spliced in at byte ${at}`, text: `${text.slice(0, at)}${junk}${text.slice(at)}` };
    }
    case 6:
      return { what: "random bytes", text: Buffer.from(Array.from({ length: 64 + Math.floor(random() * 2048) }, () => Math.floor(random() * 256))).toString("latin1") };
    case 7:
      return pick([
        { what: "an empty file", text: "" },
        { what: "only a comment", text: "# nothing here\n" },
        { what: "a list", text: "- a\n- b\n" },
        { what: "a string", text: "hello\n" },
        { what: "a number", text: "42\n" },
      ]);
    case 8:
      return { what: "an alias bomb", text: `a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n${text}` };
    case 9: {
      const depth = pick([100, 1000, 20000]);
      return { what: `flow lists nested ${depth} deep`, text: `${text}extra: ${"[".repeat(depth)}${"]".repeat(depth)}\n` };
    }
    case 10:
      return { what: "the other kind of config", text: text.replace(/kind: \w+/, (m) => (m.includes("Exporter") ? "kind: ClientConfig" : "kind: ExporterConfig")), key: ["kind"] };
    default: {
      const p = pick(keyPaths);
      parentOf(doc, p)[`unknown-${Math.floor(random() * 100)}`] = { surprise: true };
      return { what: `an unknown key beside ${p.join(".")}`, text: stringify(doc) };
    }
  }
}

interface Judged {
  ok: boolean;
  why?: string;
}

/** Whether a run on a broken file ended as it must (see the file comment). */
function judge(r: { code: number; stderr: string; stdout: string }, file: string, m: Mutant, allowFailedOperation: boolean): Judged {
  const stack = stackLines(`${r.stderr}\n${r.stdout}`);
  if (stack.length) return { ok: false, why: `printed a stack trace: ${stack[0]!.trim()}` };
  if (r.code === 0) return { ok: true };
  const lines = r.stderr.split("\n").filter((l) => l.trim());
  const said = lines.join(" / ").slice(0, 240);
  if (r.code !== 1 && r.code !== 2) return { ok: false, why: `exit ${r.code}: ${said || "(nothing on stderr)"}` };
  if (lines.length !== 1) return { ok: false, why: `exit ${r.code} with ${lines.length} lines on stderr: ${said}` };
  if (r.code === 1) return allowFailedOperation ? { ok: true } : { ok: false, why: `exit 1 (a failed operation) for a broken file: ${said}` };
  if (!lines[0]!.includes(file)) return { ok: false, why: `exit 2 without naming the file: ${said}` };
  if (m.key && !m.key.some((k) => lines[0]!.includes(k))) return { ok: false, why: `exit 2 without naming the broken key ${m.key.join(".")}: ${said}` };
  return { ok: true };
}

export async function malformedConfigs(opts: Options, rows: Row[]): Promise<void> {
  const count = opts.quick ? 24 : 300;
  const seed = Number(process.env.CHAOS_SEED ?? Math.floor(Math.random() * 2 ** 31));
  const exporterRow = row(`broken exporter configs ×${count} (jmp shell --exporter-config)`, rows);
  const clientRow = row(`broken client configs ×${count} (jmp exporter list --client-config)`, rows);
  const lab = await startLab(opts);
  try {
    await lab.addClient("fuzz");
    const env = { ...process.env, ...lab.env };
    const clientBase = parse(readFileSync(clientConfigFile("fuzz", env), "utf8")) as Doc;
    clientBase.leases = { acquisition_timeout: 600, dial_timeout: 30, retry_timeout: 300 };
    clientBase.drivers = { allow: ["jumpstarter_driver_*"], unsafe: false };
    const dir = join(lab.dir.path, "broken");
    mkdirSync(dir);
    const random = generator(seed);
    const outcomes = { exporter: new Map<string, number>(), client: new Map<string, number>() };
    const jobs: (() => Promise<void>)[] = [];
    for (let i = 0; i < count; i++) {
      for (const [kind, base, out, args, allowFailed] of [
        ["exporter", EXPORTER_BASE, exporterRow, (f: string) => ["shell", "--exporter-config", f, "--", "true"], false],
        ["client", clientBase, clientRow, (f: string) => ["exporter", "list", "--client-config", f], true],
      ] as const) {
        const m = mutate(base, random);
        const file = join(dir, `${kind}-${i}.yaml`);
        writeFileSync(file, m.text, "latin1");
        jobs.push(async () => {
          const r = await jmp(args(file), { env: lab.env, timeoutMs: 20_000 });
          out.faults++;
          const verdict = judge(r, file, m, allowFailed);
          const tally = outcomes[kind];
          tally.set(`exit ${r.code}`, (tally.get(`exit ${r.code}`) ?? 0) + 1);
          if (!verdict.ok) out.problems.push(`${kind} config ${m.what} (${file}, seed ${seed}): ${verdict.why}`);
        });
      }
    }
    // A few at a time: each is a process of its own.
    await Promise.all(Array.from({ length: 4 }, async () => {
      for (let job = jobs.shift(); job; job = jobs.shift()) await job();
    }));
    for (const [kind, out] of [["exporter", exporterRow], ["client", clientRow]] as const) {
      out.notes.push(`seed ${seed} (CHAOS_SEED=${seed} replays it): ${[...outcomes[kind]].map(([k, n]) => `${k} ×${n}`).join(", ")}`);
    }
    say(opts, `configs: ${exporterRow.notes[0]}; ${clientRow.notes[0]}`);
  } finally {
    await closeLab(opts, lab).catch((e: Error) => clientRow.problems.push(`cleanup: ${e.message.split("\n")[0]}`));
  }
}
