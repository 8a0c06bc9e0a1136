/**
 * For tests: a real pty made by socat (`socat -d -d pty,raw,echo=0 STDIO`). The
 * driver opens `path`; the test plays the device through socat's stdin and stdout,
 * which carry the bytes of the pty's other end unchanged.
 */
import type { Subprocess } from "bun";

export interface PtyPeer {
  /** The pty to give the driver, e.g. /dev/pts/3. */
  path: string;
  /** Sends bytes as if the device wrote them. */
  send(bytes: Uint8Array | string): void;
  /** Waits until the device has received `n` bytes in total (since the start) and returns them all. */
  received(n: number, timeoutMs?: number): Promise<Uint8Array>;
  /** Ends socat, which makes the pty go away. */
  close(): Promise<void>;
}

export async function ptyPeer(): Promise<PtyPeer> {
  const proc: Subprocess<"pipe", "pipe", "pipe"> = Bun.spawn(["socat", "-d", "-d", "pty,raw,echo=0", "STDIO"], {
    stdin: "pipe",
    stdout: "pipe",
    stderr: "pipe",
  });
  const path = await ptyPathFrom(proc.stderr);
  const chunks: Uint8Array[] = [];
  let total = 0;
  let wake: (() => void) | undefined;
  void (async () => {
    for await (const chunk of proc.stdout) {
      chunks.push(chunk);
      total += chunk.byteLength;
      wake?.();
    }
  })();
  return {
    path,
    send(bytes) {
      proc.stdin.write(bytes);
      proc.stdin.flush();
    },
    async received(n, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      while (total < n) {
        if (Date.now() > deadline) throw new Error(`the pty peer received ${total} of ${n} bytes`);
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 50);
        });
      }
      return Buffer.concat(chunks);
    },
    async close() {
      proc.kill();
      await proc.exited;
    },
  };
}

/** Reads socat's log for good (so it never blocks on a full pipe) and resolves with the pty path. */
function ptyPathFrom(stderr: ReadableStream<Uint8Array>): Promise<string> {
  return new Promise((resolve, reject) => {
    const decoder = new TextDecoder();
    let log = "";
    const timer = setTimeout(() => reject(new Error(`socat did not report a pty within 5 s; it said: ${log}`)), 5000);
    void (async () => {
      for await (const chunk of stderr) {
        log += decoder.decode(chunk, { stream: true });
        const m = /PTY is (\/dev\/\S+)/.exec(log);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]!);
        }
      }
      clearTimeout(timer);
      reject(new Error(`socat exited without a pty (is socat installed?); it said: ${log}`));
    })();
  });
}
