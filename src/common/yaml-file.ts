/** Reading and writing YAML files with errors that name the file, line and column. */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { dirname, join, basename } from "node:path";
import { parseDocument, stringify } from "yaml";
import { ConfigError, UserError } from "./errors.ts";

export function readYamlFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === "ENOENT") throw new UserError(`${file}: no such file`, 2);
    if (err.code === "EISDIR") throw new UserError(`${file}: is a directory, expected a YAML file`, 2);
    throw new UserError(`${file}: cannot read: ${err.message}`, 2);
  }
  return parseYaml(text, file);
}

export function parseYaml(text: string, file: string): unknown {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  const error = doc.errors[0];
  if (error) {
    const pos = error.linePos?.[0];
    const where = pos ? `line ${pos.line}, column ${pos.col}` : "";
    const message = error.message.split("\n")[0]!.replace(/ at line \d+, column \d+:?$/, "");
    throw new ConfigError(file, where, `invalid YAML: ${message}`);
  }
  return doc.toJS();
}

/** Writes atomically (temp file, fsync, rename) with mode 0600: configs hold tokens. */
export function writeYamlFile(file: string, value: unknown): void {
  writeFileAtomic(file, stringify(value, { lineWidth: 0 }));
}

export function writeFileAtomic(file: string, text: string, mode = 0o600): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.tmp`);
  const fd = openSync(tmp, "w", mode);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}
