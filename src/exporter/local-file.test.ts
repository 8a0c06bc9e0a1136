/** openLocalFile: which paths a local session reads itself, and what the client hears meanwhile. */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readNotice } from "../driver/resource.ts";
import { openLocalFile } from "./local-file.ts";

const dir = mkdtempSync(join(tmpdir(), "jmp-local-file-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const idOf = (path: string) => `${statSync(path).size}:${statSync(path).mtimeMs}`;

test("a file whose size and time are as the client saw them: its bytes for the driver, progress for the client, then the end", async () => {
  const path = join(dir, "image.img");
  const bytes = crypto.getRandomValues(new Uint8Array(2 * 1024 * 1024 + 3));
  writeFileSync(path, bytes);
  const file = (await openLocalFile(path, idOf(path)))!;
  expect(file).toBeDefined();
  const heard: string[] = [];
  file.toClient.notices!.listen((t) => heard.push(t));
  const clientEnd = new Response(file.toClient.readable).arrayBuffer();
  expect(new Uint8Array(await new Response(file.resource.readable).arrayBuffer())).toEqual(bytes);
  expect((await clientEnd).byteLength).toBe(0);
  expect(heard.at(-1)).toBe(readNotice(bytes.byteLength));
  // Read-only: a driver that writes to it is told so.
  await expect(file.resource.writable.getWriter().write(new Uint8Array(1))).rejects.toThrow("read-only");
});

test("chunks the driver hands back (ByteStream.recycle) are read into again; one handed back twice is still used once", async () => {
  const path = join(dir, "recycled.img");
  const bytes = crypto.getRandomValues(new Uint8Array(9 * 1024 * 1024 + 5));
  writeFileSync(path, bytes);
  const file = (await openLocalFile(path, idOf(path)))!;
  const reader = file.resource.readable.getReader();
  const next = async () => (await reader.read()).value!;
  // The first chunk goes back twice; the next four are held, so each needs a buffer of its own.
  const first = await next();
  const got: Uint8Array[] = [Uint8Array.from(first)];
  file.resource.recycle!(first);
  file.resource.recycle!(first);
  const held = [await next(), await next(), await next(), await next()];
  expect(new Set(held.map((c) => c.buffer)).size).toBe(4);
  // One of them was read into the first chunk's buffer.
  expect(held.some((c) => c.buffer === first.buffer)).toBe(true);
  got.push(...held.map((c) => Uint8Array.from(c)));
  for (const c of held) file.resource.recycle!(c);
  let reused = 0;
  const buffers = new Set([first.buffer, ...held.map((c) => c.buffer)]);
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    got.push(Uint8Array.from(value));
    if (buffers.has(value.buffer)) reused++;
    buffers.add(value.buffer);
    file.resource.recycle!(value);
  }
  expect(Buffer.concat(got)).toEqual(Buffer.from(bytes));
  expect(reused).toBeGreaterThan(0);
});

test("another file by the same path (another mount namespace), a relative path, a directory, a missing file, a named pipe: not read", async () => {
  const path = join(dir, "other.img");
  writeFileSync(path, "the session's file");
  expect(await openLocalFile(path, `999:${statSync(path).mtimeMs}`)).toBeUndefined();
  expect(await openLocalFile(path, `${statSync(path).size}:1`)).toBeUndefined();
  expect(await openLocalFile(path, undefined)).toBeUndefined();
  expect(await openLocalFile("other.img", idOf(path))).toBeUndefined();
  expect(await openLocalFile(dir, idOf(dir))).toBeUndefined();
  expect(await openLocalFile(join(dir, "missing.img"), "1:1")).toBeUndefined();
  // A named pipe: opening it would wait for a writer that never comes.
  const fifo = join(dir, "pipe.img");
  expect(Bun.spawnSync(["mkfifo", fifo]).exitCode).toBe(0);
  expect(await openLocalFile(fifo, idOf(fifo))).toBeUndefined();
});
