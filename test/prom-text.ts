/**
 * A parser for the Prometheus text exposition format (version 0.0.4), for tests that
 * scrape /metrics: `# HELP` and `# TYPE` lines, samples with label sets (values
 * escaped with \\, \" and \n), float values including NaN and ±Inf, an optional
 * timestamp. It rejects what the format does not allow, with the line number, so a
 * malformed exposition fails the test instead of being read wrongly.
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
  timestampMs?: number;
}

export interface Family {
  name: string;
  type: "counter" | "gauge" | "histogram" | "summary" | "untyped";
  help?: string;
  samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;
const TYPES = new Set(["counter", "gauge", "histogram", "summary", "untyped"]);

/** The family a sample belongs to: histogram and summary samples carry suffixes. */
function familyOf(sample: string, families: Map<string, Family>): Family | undefined {
  const direct = families.get(sample);
  if (direct) return direct;
  for (const suffix of ["_bucket", "_count", "_sum"]) {
    if (!sample.endsWith(suffix)) continue;
    const f = families.get(sample.slice(0, -suffix.length));
    if (f && (f.type === "histogram" || (f.type === "summary" && suffix !== "_bucket"))) return f;
  }
  return undefined;
}

function parseValue(text: string, where: string): number {
  if (text === "NaN") return Number.NaN;
  if (text === "+Inf" || text === "Inf") return Number.POSITIVE_INFINITY;
  if (text === "-Inf") return Number.NEGATIVE_INFINITY;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`${where}: '${text}' is not a number`);
  return Number(text);
}

function unescape(text: string, where: string, help: boolean): string {
  return text.replace(/\\(.)/g, (_, c: string) => {
    if (c === "\\") return "\\";
    if (c === "n") return "\n";
    if (c === '"' && !help) return '"';
    throw new Error(`${where}: unknown escape '\\${c}'`);
  });
}

/** Reads `{a="x",b="y"}` from the start of `rest`; returns the labels and what follows. */
function parseLabels(rest: string, where: string): { labels: Record<string, string>; rest: string } {
  const labels: Record<string, string> = {};
  let s = rest.slice(1);
  for (;;) {
    s = s.trimStart();
    if (s.startsWith("}")) return { labels, rest: s.slice(1) };
    const name = LABEL_NAME.exec(s)?.[0];
    if (!name) throw new Error(`${where}: expected a label name at '${s.slice(0, 20)}'`);
    s = s.slice(name.length).trimStart();
    if (!s.startsWith('="')) throw new Error(`${where}: expected '="' after label ${name}`);
    s = s.slice(2);
    let value = "";
    let i = 0;
    for (; i < s.length && s[i] !== '"'; i++) {
      if (s[i] === "\\") {
        value += s[i]! + (s[i + 1] ?? "");
        i++;
      } else value += s[i];
    }
    if (i >= s.length) throw new Error(`${where}: unterminated value of label ${name}`);
    if (name in labels) throw new Error(`${where}: label ${name} given twice`);
    labels[name] = unescape(value, where, false);
    s = s.slice(i + 1).trimStart();
    if (s.startsWith(",")) s = s.slice(1);
    else if (!s.startsWith("}")) throw new Error(`${where}: expected ',' or '}' after label ${name}`);
  }
}

export function parsePrometheusText(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const family = (name: string) => {
    let f = families.get(name);
    if (!f) families.set(name, (f = { name, type: "untyped", samples: [] }));
    return f;
  };
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  lines.forEach((line, index) => {
    const where = `line ${index + 1}`;
    if (line.trim() === "") return;
    if (line.startsWith("#")) {
      const m = /^#\s+(HELP|TYPE)\s+(\S+)(?:\s(.*))?$/.exec(line);
      if (!m) return; // an ordinary comment
      const [, kind, name, arg = ""] = m;
      if (!NAME.test(name!) || NAME.exec(name!)![0] !== name) throw new Error(`${where}: '${name}' is not a metric name`);
      const f = family(name!);
      if (kind === "HELP") {
        if (f.help !== undefined) throw new Error(`${where}: a second HELP for ${name}`);
        f.help = unescape(arg, where, true);
      } else {
        if (!TYPES.has(arg.trim())) throw new Error(`${where}: unknown type '${arg}' for ${name}`);
        if (f.samples.length) throw new Error(`${where}: TYPE of ${name} after its samples`);
        f.type = arg.trim() as Family["type"];
      }
      return;
    }
    const name = NAME.exec(line)?.[0];
    if (!name) throw new Error(`${where}: expected a metric name at '${line.slice(0, 20)}'`);
    let rest = line.slice(name.length);
    let labels: Record<string, string> = {};
    if (rest.startsWith("{")) ({ labels, rest } = parseLabels(rest, where));
    const fields = rest.trim().split(/\s+/);
    if (!rest.startsWith(" ") && !rest.startsWith("\t")) throw new Error(`${where}: expected a space before the value`);
    if (fields.length < 1 || fields.length > 2 || fields[0] === "") throw new Error(`${where}: expected 'value [timestamp]'`);
    const sample: Sample = { name, labels, value: parseValue(fields[0]!, where) };
    if (fields[1] !== undefined) {
      if (!/^-?\d+$/.test(fields[1])) throw new Error(`${where}: '${fields[1]}' is not a timestamp`);
      sample.timestampMs = Number(fields[1]);
    }
    (familyOf(name, families) ?? family(name)).samples.push(sample);
  });
  return families;
}

/** The value of the one sample named `name` whose labels include `labels`; 0 when there is none (a counter not yet incremented). */
export function sampleValue(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  let found = 0;
  for (const f of families.values()) {
    for (const s of f.samples) {
      if (s.name !== name || !Object.entries(labels).every(([k, v]) => s.labels[k] === v)) continue;
      total += s.value;
      found++;
    }
  }
  return found ? total : 0;
}
