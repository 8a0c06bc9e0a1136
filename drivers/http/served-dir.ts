/**
 * The directory an HTTP or TFTP server serves: names from the network are
 * resolved inside it and nowhere else (no `..`, no symlink leading out), and files
 * a client uploads are remembered so that they can be removed when the session
 * ends (upstream's `remove_created_on_close`).
 */
import { randomBytes } from "node:crypto";
import { mkdir, realpath, rename, rm, rmdir, stat } from "node:fs/promises";
import { dirname, join, sep } from "node:path";
import { InvalidArgumentError } from "@jumpstarter/driver";

/** Why a name does not resolve to a file that may be served. */
export type Refusal = "outside" | "missing" | "not-a-file";

export class ServedDirectory {
  /** Files and directories created by uploads, in creation order. */
  private readonly created: string[] = [];

  constructor(readonly root: string) {}

  /**
   * The path segments of a name given by a client, or undefined when it tries to
   * leave the directory. Leading slashes are ignored: TFTP and HTTP clients both
   * send names that look absolute but mean "from the served root".
   */
  static segments(name: string): string[] | undefined {
    if (name.includes("\0")) return undefined;
    const parts = name.split("/").filter((p) => p !== "" && p !== ".");
    if (parts.some((p) => p === "..")) return undefined;
    return parts;
  }

  /** Creates the directory if needed (as upstream does), with an error that names it. */
  async ensure(): Promise<void> {
    try {
      await mkdir(this.root, { recursive: true });
    } catch (e) {
      throw new InvalidArgumentError(`cannot create root_dir ${this.root}: ${(e as Error).message}`);
    }
  }

  /** The real path of a file to serve, or why not. */
  async fileFor(name: string): Promise<{ path: string; size: number } | Refusal> {
    const parts = ServedDirectory.segments(name);
    if (!parts) return "outside";
    let real: string;
    let root: string;
    try {
      [real, root] = await Promise.all([realpath(join(this.root, ...parts)), realpath(this.root)]);
    } catch {
      return "missing";
    }
    // A symlink inside the root may point anywhere; only serve what stays inside.
    if (real !== root && !real.startsWith(root + sep)) return "outside";
    const st = await stat(real).catch(() => undefined);
    if (!st) return "missing";
    if (!st.isFile()) return "not-a-file";
    return { path: real, size: st.size };
  }

  /**
   * Writes an uploaded file under the root (creating directories as needed) and
   * returns its path. The data goes to a temporary name first, so a broken upload
   * never replaces a file that was being served.
   */
  async write(name: string, data: ReadableStream<Uint8Array>): Promise<string> {
    const parts = ServedDirectory.segments(name);
    if (!parts || parts.length === 0) {
      throw new InvalidArgumentError(`'${name}' is not a file name inside the served directory (no '..', not empty)`);
    }
    await this.ensure();
    let dir = this.root;
    for (const part of parts.slice(0, -1)) {
      dir = join(dir, part);
      if (await mkdir(dir).then(() => true, (e: NodeJS.ErrnoException) => {
        if (e.code === "EEXIST") return false;
        throw e;
      })) this.created.push(dir);
    }
    const [realDir, realRoot] = await Promise.all([realpath(dir), realpath(this.root)]);
    if (realDir !== realRoot && !realDir.startsWith(realRoot + sep)) {
      throw new InvalidArgumentError(`'${name}' leads outside the served directory through a symbolic link`);
    }
    const dest = join(realDir, parts.at(-1)!);
    const existed = await stat(dest).then(() => true, () => false);
    const temp = join(dirname(dest), `.${parts.at(-1)}.${randomBytes(4).toString("hex")}.part`);
    try {
      await Bun.write(temp, new Response(data));
      await rename(temp, dest);
    } catch (e) {
      await rm(temp, { force: true });
      throw e;
    }
    if (!existed) this.created.push(dest);
    return dest;
  }

  /** Removes what uploads created (directories only when empty), newest first. */
  async removeCreated(): Promise<void> {
    for (const path of this.created.reverse()) {
      await rm(path, { force: true }).catch(() => rmdir(path)).catch(() => {});
    }
    this.created.length = 0;
  }
}
