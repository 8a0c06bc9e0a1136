/**
 * A byte stream read as text lines while it arrives: `onLines` gets each chunk's
 * complete lines, then the last line if it had no newline. For following what a
 * child process prints.
 */
export async function readLines(stream: ReadableStream<Uint8Array>, onLines: (lines: string[]) => void): Promise<void> {
  const decoder = new TextDecoder();
  let partial = "";
  for await (const chunk of stream) {
    const parts = (partial + decoder.decode(chunk, { stream: true })).split("\n");
    partial = parts.pop()!;
    onLines(parts);
  }
  if (partial) onLines([partial]);
}
