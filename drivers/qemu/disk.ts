/** The board's disk image files: created, grown and written as a flasher would. */
import { randomBytes } from "node:crypto";
import { existsSync, statSync } from "node:fs";
import { open, rename, rm, truncate } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { DriverError } from "@jumpstarter/driver";

/**
 * Makes a raw image at least `size` bytes long: creates it (sparse) when missing,
 * grows it when smaller. Shrinking would cut off data, so it is refused.
 * Returns whether there is an image to attach.
 */
export async function prepareRawDisk(path: string, size: number | undefined, log: (m: string) => void): Promise<boolean> {
  const exists = existsSync(path);
  if (size === undefined) return exists;
  const current = exists ? statSync(path).size : 0;
  if (current > size) {
    throw new DriverError(`the disk image ${path} is ${current} bytes, larger than disk_size (${size} bytes); shrinking is not supported`);
  }
  if (current < size) {
    if (!exists) await (await open(path, "w")).close();
    await truncate(path, size);
    log(`${exists ? "grew" : "created"} the disk image ${path} to ${size} bytes`);
  }
  return true;
}

/**
 * Writes a stream to `path` through a temporary file in the same directory, so
 * that a broken upload leaves the previous image in place. Returns the byte count.
 */
export async function writeImage(path: string, data: ReadableStream<Uint8Array>): Promise<number> {
  const temp = join(dirname(path), `.${basename(path)}.${randomBytes(4).toString("hex")}.flashing`);
  const file = await open(temp, "w");
  let written = 0;
  try {
    for await (const chunk of data) {
      for (let at = 0; at < chunk.byteLength; ) at += (await file.write(chunk, at)).bytesWritten;
      written += chunk.byteLength;
    }
    await file.sync();
    await file.close();
    await rename(temp, path);
  } catch (e) {
    await file.close().catch(() => {});
    await rm(temp, { force: true });
    throw e;
  }
  return written;
}
