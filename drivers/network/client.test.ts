import { afterEach, expect, spyOn, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCommand } from "citty";
import { InvalidArgumentError, MethodNotFoundError } from "@jumpstarter/driver";
import { serve, type Served } from "../../src/testing/serve.ts";
import { NetworkClient } from "./client.ts";
import { EchoNetwork, TcpNetwork, UnixNetwork } from "./driver.ts";
import { connectLocal, readSocket } from "./test-servers.ts";

let served: Served<NetworkClient> | undefined;
const printed: string[] = [];
let onPrint = () => {};
const log = spyOn(console, "log").mockImplementation((...args: unknown[]) => {
  printed.push(args.join(" "));
  onPrint();
});
afterEach(async () => {
  await served?.close();
  served = undefined;
  printed.length = 0;
});

/** Runs `j <driver> ...args` against the served driver. */
function j(...args: string[]) {
  return runCommand(served!.client.cli(), { rawArgs: args });
}

/** Resolves once the command has printed `n` lines (a command that never does fails on the test's timeout). */
async function printedLines(n: number): Promise<string[]> {
  while (printed.length < n) await new Promise<void>((resolve) => (onPrint = resolve));
  return printed.slice(0, n);
}

test("j address prints host:port, or just the host or the port, as upstream", async () => {
  served = await serve<NetworkClient>(TcpNetwork.create({ host: "::1", port: 2222 }));
  await j("address");
  await j("address", "--host");
  await j("address", "--port");
  await j("address", "--host", "--port");
  expect(printed).toEqual(["[::1]:2222", "::1", "2222", "[::1]:2222"]);
  expect(log).toHaveBeenCalled();
});

test("j address explains why there is no address", async () => {
  served = await serve<NetworkClient>(TcpNetwork.create({ host: "10.0.0.5", port: 22, enable_address: false }));
  const disabled = await j("address").catch((e: unknown) => e);
  expect(disabled).toBeInstanceOf(InvalidArgumentError);
  expect((disabled as Error).message).toContain("enable_address");
  await served.close();
  served = await serve<NetworkClient>(UnixNetwork.create({ path: "/run/some.sock" }));
  const err = await j("address").catch((e: unknown) => e);
  expect(err).toBeInstanceOf(MethodNotFoundError);
  expect((err as Error).message).toContain("use forward-tcp or forward-unix");
});

test("j forward-tcp prints where it listens, forwards, and stops cleanly on SIGTERM", async () => {
  served = await serve<NetworkClient>(new EchoNetwork({}));
  const running = j("forward-tcp", "0", "--host", "127.0.0.1");
  const [address] = await printedLines(1);
  const [host, port] = [address!.slice(0, address!.lastIndexOf(":")), Number(address!.slice(address!.lastIndexOf(":") + 1))];
  expect(host).toBe("127.0.0.1");
  const socket = await connectLocal({ host, port });
  const reply = readSocket(socket);
  socket.end("via the cli");
  expect(await reply).toBe("via the cli");

  process.emit("SIGTERM");
  await running;
  await expect(connectLocal({ host, port })).rejects.toThrow();
}, 10_000);

test("j forward-tcp accepts upstream's --address and rejects a bad port", async () => {
  served = await serve<NetworkClient>(new EchoNetwork({}));
  const running = j("forward-tcp", "--address", "127.0.0.1");
  const [address] = await printedLines(1);
  expect(address).toMatch(/^127\.0\.0\.1:\d+$/);
  process.emit("SIGINT");
  await running;
  await expect(j("forward-tcp", "http")).rejects.toThrow("PORT must be a TCP port from 0 to 65535, got 'http'");
}, 10_000);

test("j forward-unix listens on the given path until Ctrl-C, then removes it", async () => {
  served = await serve<NetworkClient>(new EchoNetwork({}));
  const dir = mkdtempSync(join(tmpdir(), "jmp-cli-test-"));
  try {
    const path = join(dir, "net.sock");
    const running = j("forward-unix", path);
    expect(await printedLines(1)).toEqual([path]);
    const socket = await connectLocal({ path });
    const reply = readSocket(socket);
    socket.end("unix cli");
    expect(await reply).toBe("unix cli");
    process.emit("SIGINT");
    await running;
    expect(existsSync(path)).toBe(false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 10_000);
