/**
 * Waiting for text on a console byte stream, pexpect-style: `expect()` reads until
 * one of the patterns appears and consumes everything up to the end of the match,
 * so the next `expect()` looks only at what came after.
 */
import { DeadlineExceededError, InvalidArgumentError, UnavailableError } from "@jumpstarter/driver";

export type Pattern = string | RegExp;

export interface Match {
  /** Which of the patterns matched (the one matching earliest in the text; ties go to the first listed). */
  index: number;
  /** The matched text. */
  text: string;
  /** The text between the previous match (or the start) and this one. */
  before: string;
  /** A regex's capture groups. */
  groups: (string | undefined)[];
}

/** Text kept for a pattern to match in; older unmatched text is dropped. */
const DEFAULT_WINDOW = 64 * 1024;
/** Text kept for error messages. */
const RECENT = 4096;

/**
 * The text received so far and not yet consumed by a match. Bytes are decoded as
 * UTF-8 (invalid bytes become U+FFFD); a character split across chunks is kept whole.
 */
export class ExpectBuffer {
  private pending = "";
  private recent = "";
  private readonly decoder = new TextDecoder("utf-8");

  constructor(private readonly window = DEFAULT_WINDOW) {}

  push(bytes: Uint8Array): void {
    const text = this.decoder.decode(bytes, { stream: true });
    this.pending = (this.pending + text).slice(-this.window);
    this.recent = (this.recent + text).slice(-RECENT);
  }

  /** Finds the earliest match of any pattern and consumes through its end. */
  match(patterns: Pattern[]): Match | undefined {
    let best: { index: number; at: number; text: string; groups: (string | undefined)[] } | undefined;
    patterns.forEach((p, index) => {
      let at: number;
      let text: string;
      let groups: (string | undefined)[] = [];
      if (typeof p === "string") {
        at = this.pending.indexOf(p);
        text = p;
      } else {
        const m = new RegExp(p.source, p.flags.replace(/[gy]/g, "")).exec(this.pending);
        at = m ? m.index : -1;
        text = m ? m[0] : "";
        groups = m ? m.slice(1) : [];
      }
      if (at >= 0 && (!best || at < best.at)) best = { index, at, text, groups };
    });
    if (!best) return undefined;
    const before = this.pending.slice(0, best.at);
    this.pending = this.pending.slice(best.at + best.text.length);
    return { index: best.index, text: best.text, before, groups: best.groups };
  }

  /** The last `n` lines received (matched or not), control characters made visible. */
  lastLines(n: number): string[] {
    const lines = this.recent.split(/\r?\n|\r/);
    if (lines.at(-1) === "") lines.pop();
    return lines.slice(-n).map(visible);
  }
}

function visible(line: string): string {
  return line.replace(/[\x00-\x08\x0b-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}

export function describePatterns(patterns: Pattern[]): string {
  return patterns.map((p) => (typeof p === "string" ? JSON.stringify(p) : String(p))).join(" or ");
}

export interface ExpecterOptions {
  /** Called with every chunk as it arrives (e.g. to echo it to stdout). */
  onData?: (bytes: Uint8Array) => void;
  /** How much unmatched text to keep, in characters. */
  window?: number;
}

/** The part of a stream reader used here (Bun's and Node's reader types differ). */
export interface ChunkReader {
  read(): Promise<Chunk>;
  cancel(): Promise<void>;
}
type Chunk = { done: boolean; value?: Uint8Array };

/** Reads a console stream and waits for patterns in it. */
export class Expecter {
  readonly buffer: ExpectBuffer;
  private readonly reader: ChunkReader;
  /** A read that outlived a timed-out expect(); the next expect() takes its result. */
  private inflight?: Promise<Chunk>;
  private ended = false;

  constructor(readable: ReadableStream<Uint8Array>, private readonly options: ExpecterOptions = {}) {
    this.reader = readable.getReader();
    this.buffer = new ExpectBuffer(options.window);
  }

  /**
   * Resolves with the first match, or rejects with DeadlineExceededError after
   * `timeoutMs`, or with UnavailableError when the stream ends first; both errors
   * quote the last lines received.
   */
  async expect(patterns: Pattern | Pattern[], timeoutMs: number): Promise<Match> {
    const list = Array.isArray(patterns) ? patterns : [patterns];
    if (list.length === 0) throw new InvalidArgumentError("expect needs at least one pattern");
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const found = this.buffer.match(list);
      if (found) return found;
      if (this.ended) throw new UnavailableError(this.failure(`the stream ended before ${describePatterns(list)} appeared`));
      const left = deadline - performance.now();
      if (left <= 0) throw new DeadlineExceededError(this.failure(`timed out after ${timeoutMs / 1000} s waiting for ${describePatterns(list)}`));
      this.inflight ??= this.reader.read();
      let timer: Timer | undefined;
      const result = await Promise.race([
        this.inflight,
        new Promise<undefined>((r) => (timer = setTimeout(r, left))),
      ]);
      clearTimeout(timer);
      if (!result) continue;
      this.inflight = undefined;
      if (!result.value) this.ended = true;
      else {
        this.options.onData?.(result.value);
        this.buffer.push(result.value);
      }
    }
  }

  /** Stops reading and cancels the stream. */
  async close(): Promise<void> {
    await this.reader.cancel().catch(() => {});
  }

  private failure(what: string): string {
    const lines = this.buffer.lastLines(5);
    if (lines.length === 0) return `${what}; nothing was received`;
    return `${what}; the last lines received were:\n${lines.map((l) => `  | ${l}`).join("\n")}`;
  }
}

const ESCAPES: Record<string, string> = { n: "\n", r: "\r", t: "\t", e: "\x1b", "\\": "\\" };

/**
 * The bytes of command-line text with `\n`, `\r`, `\t`, `\e`, `\\` and `\xHH`
 * interpreted; `\xHH` is one raw byte, the rest is UTF-8.
 */
export function unescapeText(text: string): Uint8Array {
  const out: number[] = [];
  const utf8 = new TextEncoder();
  let last = 0;
  for (const m of text.matchAll(/\\(x[0-9a-fA-F]{2}|.?)/gs)) {
    out.push(...utf8.encode(text.slice(last, m.index)));
    last = m.index + m[0].length;
    const code = m[1]!;
    if (code.length === 3) {
      out.push(parseInt(code.slice(1), 16));
      continue;
    }
    const c = ESCAPES[code];
    if (c === undefined) throw new InvalidArgumentError(`unknown escape '${m[0]}' (known: \\n \\r \\t \\e \\\\ \\xHH)`);
    out.push(c.charCodeAt(0));
  }
  out.push(...utf8.encode(text.slice(last)));
  return new Uint8Array(out);
}

/** A --regex pattern, with a clear error when it does not compile. */
export function compilePattern(source: string): RegExp {
  try {
    return new RegExp(source);
  } catch (e) {
    throw new InvalidArgumentError(`invalid regular expression '${source}': ${(e as Error).message}`);
  }
}
