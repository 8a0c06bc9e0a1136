/** Connecting a byte stream to this process's stdin and stdout (for `j … pipe` and friends). */
import type { ByteStream } from "./byte-stream.ts";
import { stdout } from "../common/stdout.ts";

export async function pumpStdio(stream: ByteStream, opts: { input?: boolean } = {}): Promise<void> {
  const output = (async () => {
    for await (const chunk of stream.readable) {
      if (!stdout().write(chunk)) await new Promise((r) => stdout().once("drain", r));
    }
  })();
  if (opts.input !== false) {
    const input = (async () => {
      const writer = stream.writable.getWriter();
      for await (const chunk of process.stdin) await writer.write(chunk as Uint8Array);
      await writer.close();
    })();
    input.catch(() => {});
  }
  await output;
}
