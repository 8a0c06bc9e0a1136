/** The HTTP server driver over the wire, fetched with real HTTP requests. */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serve, type Served } from "../../src/testing/serve.ts";
import { HttpServerClient } from "./client.ts";
import { HttpServer } from "./driver.ts";

const root = mkdtempSync(join(tmpdir(), "jmp-http-root-"));
const secret = mkdtempSync(join(tmpdir(), "jmp-http-secret-"));
const image = randomBytes(3_000_000);
let served: Served<HttpServerClient>;
let url = "";

beforeAll(async () => {
  writeFileSync(join(root, "image.bin"), image);
  mkdirSync(join(root, "boot"));
  writeFileSync(join(root, "boot", "vmlinuz"), "KERNEL");
  writeFileSync(join(secret, "passwd"), "SECRET");
  symlinkSync(join(secret, "passwd"), join(root, "escape"));
  served = await serve<HttpServerClient>(new HttpServer({ root_dir: root, host: "127.0.0.1", port: 0, timeout: 600, remove_created_on_close: true }));
  await served.client.start();
  url = await served.client.getUrl();
});

afterAll(async () => {
  await served?.close();
  rmSync(root, { recursive: true, force: true });
  rmSync(secret, { recursive: true, force: true });
});

/** A request sent as raw bytes, so the path reaches the server exactly as written. */
async function rawGet(path: string): Promise<string> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), "127.0.0.1", () => socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`));
    let text = "";
    socket.on("data", (d) => (text += d.toString("latin1")));
    socket.on("end", () => resolve(text));
    socket.on("error", reject);
  });
}

test("serves files by URL; the client reports where", async () => {
  expect(served.client).toBeInstanceOf(HttpServerClient);
  const port = await served.client.getPort();
  expect(port).toBeGreaterThan(0);
  expect(url).toBe(`http://127.0.0.1:${port}`);
  expect(await served.client.getHost()).toBe("127.0.0.1");
  const r = await fetch(`${url}/image.bin`);
  expect(r.status).toBe(200);
  expect(r.headers.get("content-length")).toBe(String(image.byteLength));
  expect(Buffer.compare(Buffer.from(await r.arrayBuffer()), image)).toBe(0);
  expect(await (await fetch(`${url}/boot/vmlinuz`)).text()).toBe("KERNEL");
  const head = await fetch(`${url}/image.bin`, { method: "HEAD" });
  expect(head.status).toBe(200);
  expect(head.headers.get("content-length")).toBe(String(image.byteLength));
});

test("missing files are 404; directories, other methods and ways out are refused", async () => {
  expect((await fetch(`${url}/nope.bin`)).status).toBe(404);
  expect((await fetch(`${url}/boot`)).status).toBe(403);
  expect((await fetch(`${url}/escape`)).status).toBe(403);
  const post = await fetch(`${url}/image.bin`, { method: "POST", body: "x" });
  expect(post.status).toBe(405);
  expect(post.headers.get("allow")).toBe("GET, HEAD");
  for (const path of ["/../" + secret.slice(1) + "/passwd", "/boot/%2e%2e/%2e%2e" + secret + "/passwd", "/..%2f..%2f" + secret.slice(1) + "%2fpasswd"]) {
    const reply = await rawGet(path);
    expect(reply).not.toContain("SECRET");
    expect(reply).toMatch(/^HTTP\/1\.1 (403|404)/);
  }
});

test("put_file uploads and answers the URL; uploads go away with the session", async () => {
  const put = await served.client.putFile(new Response("fresh image").body!, "images/new file.img");
  expect(put).toBe(`${url}/images/new%20file.img`);
  expect(await (await fetch(put)).text()).toBe("fresh image");
  await expect(served.client.putFile(new Response("x").body!, "../../etc/evil")).rejects.toThrow("not a file name inside the served directory");

  const other = await serve<HttpServerClient>(new HttpServer({ root_dir: root, host: "127.0.0.1", port: 0, timeout: 600, remove_created_on_close: true }));
  await other.client.putFile(new Response("temporary").body!, "tmp/a.img");
  expect(existsSync(join(root, "tmp", "a.img"))).toBe(true);
  await other.close();
  expect(existsSync(join(root, "tmp"))).toBe(false);
  expect(existsSync(join(root, "image.bin"))).toBe(true);
});

test("stop closes the port; a busy port is a clear error", async () => {
  const port = await served.client.getPort();
  const busy = await serve<HttpServerClient>(new HttpServer({ root_dir: root, host: "127.0.0.1", port, timeout: 600, remove_created_on_close: false }));
  try {
    // Not expect().rejects: in Bun 1.4.5 it stalls on the first call of a fresh connection.
    const error = await busy.client.start().then(() => undefined, (e: Error) => e);
    expect(error?.message).toContain(`cannot listen on 127.0.0.1:${port}`);
  } finally {
    await busy.close();
  }
  await served.client.stop();
  await expect(fetch(`${url}/image.bin`)).rejects.toThrow();
  await served.client.start();
  url = await served.client.getUrl();
  expect((await fetch(`${url}/boot/vmlinuz`)).status).toBe(200);
});
