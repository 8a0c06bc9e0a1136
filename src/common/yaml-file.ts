/** Reading and writing YAML files with errors that name the file, line and column. */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync } from "node:fs";
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
  try {
    return doc.toJS();
  } catch (e) {
    // What parses can still be refused when it becomes data: an alias bomb (the
    // library's alias limit), nesting too deep to build. Still the file's fault.
    throw new ConfigError(file, "", `invalid YAML: ${(e as Error).message}`);
  }
}

/** Writes atomically (temp file, fsync, rename) with mode 0600: configs hold tokens. */
export function writeYamlFile(file: string, value: unknown): void {
  writeFileAtomic(file, stringify(value, { lineWidth: 0 }));
}

export function writeFileAtomic(file: string, text: string, mode = 0o600): void {
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.tmp`);
  try {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    const fd = openSync(tmp, "w", mode);
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new UserError(`cannot write ${file}: ${reason(e, dirname(file))}`, 1, { cause: e });
  }
}

/**
 * Fails now, with the reason, if `file` could not be written by writeFileAtomic
 * (a missing or read-only directory, a directory in its place), so a command can
 * check before it does anything that would be lost without the file.
 */
export function checkWritable(file: string, flag: string): void {
  let isDir = false;
  try {
    isDir = statSync(file).isDirectory();
  } catch {
    // Not there yet: that is the usual case.
  }
  if (isDir) throw new UserError(`${flag} ${file}: is a directory; give a file name`, 2);
  const probe = join(dirname(file), `.${basename(file)}.${process.pid}.probe`);
  try {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    closeSync(openSync(probe, "wx", 0o600));
    rmSync(probe, { force: true });
  } catch (e) {
    throw new UserError(`${flag} ${file}: cannot write there: ${reason(e, dirname(file))}`, 2, { cause: e });
  }
}

function reason(e: unknown, dir: string): string {
  const err = e as NodeJS.ErrnoException;
  switch (err.code) {
    case "ENOENT": return existsSync(dir) ? "files cannot be created in that directory" : "no such directory";
    case "EACCES": case "EPERM": return "permission denied";
    case "EROFS": return "read-only file system";
    case "ENOSPC": return "no space left on the device";
    case "EISDIR": return "is a directory";
    case "ENOTDIR": return "a part of the path is not a directory";
    default: return err.message ?? String(e);
  }
}
