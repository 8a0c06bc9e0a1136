/**
 * Images the exporter fetches from a URL arrive as they are stored, often
 * compressed (gzip, zstd, xz for Raspberry Pi OS and many Yocto builds, bz2). Like
 * upstream's flashers we recognise the format by its first bytes and decompress it
 * on the exporter while the image streams to the disk, with the driver runtime's
 * codecs. (A client's own file is decompressed by the runtime's resource
 * negotiation before the driver reads it.)
 */
import { decode, detectEncoding, type Encoding, peek } from "@jumpstarter/driver";

/** `data` decompressed if its first bytes name a format; `format` says which. */
export async function unpack(data: ReadableStream<Uint8Array>): Promise<{ data: ReadableStream<Uint8Array>; format?: Encoding }> {
  const [head, whole] = await peek(data);
  const format = detectEncoding(head);
  return format ? { data: decode(whole, format), format } : { data: whole };
}
