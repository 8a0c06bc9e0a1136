/** Client side of `put_file`: streams a local file to the exporter as a resource. */
import { existsSync, statSync } from "node:fs";
import { basename } from "node:path";
import { type DriverClient, InvalidArgumentError } from "@jumpstarter/driver";

/** Uploads `src` (a local path or a stream) as `dst` (default: the file's name) through `put_file`. */
export async function putFile(client: DriverClient, src: string | ReadableStream<Uint8Array>, dst?: string): Promise<string> {
  let data: ReadableStream<Uint8Array>;
  if (typeof src === "string") {
    if (!existsSync(src) || !statSync(src).isFile()) throw new InvalidArgumentError(`${src}: no such file`);
    data = Bun.file(src).stream();
    dst ??= basename(src);
  } else {
    data = src;
  }
  if (!dst) throw new InvalidArgumentError("a name for the uploaded data is needed");
  const { handle, done } = await client.resource(data);
  await Promise.all([client.call("put_file", dst, handle), done]);
  return dst;
}
