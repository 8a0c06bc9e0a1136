/**
 * Logging for every role: one line per event on stderr. Text with colours on a TTY,
 * plain `level name: message` lines otherwise (journald adds its own timestamps),
 * or JSON lines with `--log-format json`.
 */

/**
 * Whether text written to `stream` may carry ANSI colours: only on a terminal (not
 * `TERM=dumb`), and never while NO_COLOR is set to anything but "" (no-color.org).
 * FORCE_COLOR (set, and not "0") colours a pipe too, for viewers that render colours;
 * NO_COLOR wins over it.
 */
export function useColor(stream: { isTTY?: boolean }, env: Record<string, string | undefined> = process.env): boolean {
  if (env.NO_COLOR) return false;
  if (env.FORCE_COLOR && env.FORCE_COLOR !== "0") return true;
  return Boolean(stream.isTTY) && env.TERM !== "dumb";
}
export type LogLevel = "debug" | "info" | "warn" | "error";
export const LOG_LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error"];
export type LogFormat = "text" | "json";

export interface LogRecord {
  level: LogLevel;
  name: string;
  message: string;
  time: Date;
  fields?: Record<string, string>;
  /**
   * Who the event concerns (lease, client, exporter, namespace): keys of the line in
   * `--log-format json`, so a log search can follow one lease across every role. Text
   * lines leave them out; their message already names what matters to a reader.
   */
  keys?: Record<string, string>;
}

type Sink = (record: LogRecord) => void;

const settings = {
  level: "info" as LogLevel,
  format: "text" as LogFormat,
  /**
   * Decided at the first line logged: reading `process.stderr.isTTY` builds the
   * stderr stream, which costs a command that logs nothing (`jmp version`) 3-5 ms.
   */
  color: undefined as boolean | undefined,
};

export function configureLogging(opts: { level?: string; format?: string }): void {
  if (opts.level) {
    const level = opts.level.toLowerCase() === "warning" ? "warn" : opts.level.toLowerCase();
    if (!LOG_LEVELS.includes(level as LogLevel)) {
      throw new RangeError(`'--log-level' must be one of ${LOG_LEVELS.join(", ")}: got '${opts.level}'`);
    }
    settings.level = level as LogLevel;
  }
  if (opts.format === "json" || opts.format === "text") settings.format = opts.format;
  else if (opts.format === "auto" || opts.format === undefined) settings.format = settings.format;
  else throw new RangeError(`'--log-format' must be auto, text or json: got '${opts.format}'`);
}

export function logLevel(): LogLevel {
  return settings.level;
}

export function enabled(level: LogLevel): boolean {
  return LOG_LEVELS.indexOf(level) >= LOG_LEVELS.indexOf(settings.level);
}

const COLORS: Record<LogLevel, string> = { debug: "\x1b[90m", info: "\x1b[36m", warn: "\x1b[33m", error: "\x1b[31m" };

function writeStderr(r: LogRecord): void {
  if (!enabled(r.level)) return;
  let line: string;
  if (settings.format === "json") {
    line = JSON.stringify({ time: r.time.toISOString(), level: r.level, logger: r.name, message: r.message, ...r.keys, ...r.fields });
  } else {
    const extra = r.fields && Object.keys(r.fields).length
      ? " " + Object.entries(r.fields).map(([k, v]) => `${k}=${v}`).join(" ")
      : "";
    const color = (settings.color ??= useColor(process.stderr));
    const tag = color ? `${COLORS[r.level]}${r.level.toUpperCase()}\x1b[0m` : r.level.toUpperCase();
    // Off a terminal (journald, a log file) one event stays one line.
    const message = color ? r.message : r.message.replace(/\r?\n/g, "\\n");
    line = `${tag} ${r.name}: ${message}${extra}`;
  }
  process.stderr.write(line + "\n");
}

export class Logger {
  constructor(
    readonly name: string,
    private readonly sink: Sink = writeStderr,
  ) {}
  debug(message: string, fields?: Record<string, string>) { this.emit("debug", message, fields); }
  info(message: string, fields?: Record<string, string>) { this.emit("info", message, fields); }
  warn(message: string, fields?: Record<string, string>) { this.emit("warn", message, fields); }
  error(message: string, fields?: Record<string, string>) { this.emit("error", message, fields); }
  /** A logger whose every record carries `keys` too (see LogRecord.keys); its own keys win over the outer ones. */
  with(keys: Record<string, string | undefined>): Logger {
    const defined = Object.fromEntries(Object.entries(keys).filter(([, v]) => v !== undefined && v !== "")) as Record<string, string>;
    const sink = this.sink;
    return new Logger(this.name, (r) => sink({ ...r, keys: { ...r.keys, ...defined } }));
  }
  private emit(level: LogLevel, message: string, fields?: Record<string, string>) {
    this.sink({ level, name: this.name, message, time: new Date(), fields });
  }
}

export function getLogger(name: string): Logger {
  return new Logger(name);
}

/** The default sink, for loggers that also forward records elsewhere. */
export const stderrSink: Sink = writeStderr;
