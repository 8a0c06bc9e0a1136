/**
 * Test support: everything a console printed, read expect-style. Tests wait for
 * text with a timeout instead of sleeping, so they are as fast as the board and
 * fail with what was actually seen.
 */
export class Transcript {
  private text = "";
  /** Where the next expect() starts looking. */
  private cursor = 0;
  private changed?: () => void;
  private readonly decoder = new TextDecoder();
  private stop?: () => Promise<void>;

  /** Reads a stream into a new transcript in the background until it ends or close(). */
  static of(readable: ReadableStream<Uint8Array>): Transcript {
    const t = new Transcript();
    const reader = readable.getReader();
    t.stop = () => reader.cancel();
    void (async () => {
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return;
          t.append(value);
        }
      } catch {
        // A stream torn down at the end of a test just stops the transcript.
      }
    })();
    return t;
  }

  /** Stops reading the stream given to of(), cancelling it (the client hangs up). */
  async close(): Promise<void> {
    await this.stop?.().catch(() => {});
  }

  append(bytes: Uint8Array): void {
    this.text += this.decoder.decode(bytes, { stream: true });
    this.changed?.();
  }

  /** Everything received so far. */
  get all(): string {
    return this.text;
  }

  /**
   * Waits until `pattern` shows up after the previous match and returns the text
   * from there up to the end of this match.
   */
  async expect(pattern: string | RegExp, timeoutMs = 5000): Promise<string> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const rest = this.text.slice(this.cursor);
      const found = typeof pattern === "string"
        ? (() => {
            const i = rest.indexOf(pattern);
            return i < 0 ? undefined : i + pattern.length;
          })()
        : (() => {
            const m = pattern.exec(rest);
            return m ? m.index + m[0].length : undefined;
          })();
      if (found !== undefined) {
        this.cursor += found;
        return rest.slice(0, found);
      }
      const left = deadline - performance.now();
      if (left <= 0) {
        throw new Error(`timed out after ${timeoutMs} ms waiting for ${String(pattern)}; received since the last match: ${JSON.stringify(rest)}`);
      }
      await this.nextChange(left);
    }
  }

  private nextChange(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.changed = () => {
        clearTimeout(timer);
        this.changed = undefined;
        resolve();
      };
    });
  }
}
