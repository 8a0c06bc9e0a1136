/**
 * An error meant for the person at the terminal: the CLI prints its message on one
 * line and exits with `exitCode`, without a stack trace.
 */
export class UserError extends Error {
  override name = "UserError";
  constructor(
    message: string,
    readonly exitCode = 1,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/**
 * A mistake in a configuration file: names the file, the key path inside it and
 * what was expected there, so it can be fixed without reading our source.
 */
export class ConfigError extends UserError {
  override name = "ConfigError";
  constructor(
    readonly file: string,
    readonly keyPath: string,
    readonly problem: string,
  ) {
    super(keyPath ? `${file}: ${keyPath}: ${problem}` : `${file}: ${problem}`, 2);
  }
}

/** Describes a value for an error message: its type and a short rendering. */
export function describeValue(value: unknown): string {
  if (value === null) return "null";
  if (value === undefined) return "nothing";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  const text = JSON.stringify(value);
  const short = text.length > 40 ? `${text.slice(0, 37)}...` : text;
  return `${typeof value} ${short}`;
}
