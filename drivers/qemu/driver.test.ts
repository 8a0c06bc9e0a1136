/**
 * The QEMU board: config checking and the command line without QEMU, then the
 * real qemu-system-aarch64 with Debian's U-Boot (skipped, saying why, when they
 * are not installed; CI installs them).
 */
import { afterEach, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { eventually } from "../../src/common/eventually.ts";
import { parseExporterConfig } from "../../src/common/exporter-config.ts";
import type { Composite } from "../../src/driver/index.ts";
import { openConsole } from "../../src/api/console.ts";
import { serve, type Served } from "../../src/testing/serve.ts";
import { NetworkClient } from "../network/client.ts";
import { PowerClient } from "../power/client.ts";
import { SerialClient } from "../serial/client.ts";
import { QemuClient } from "./client.ts";
import type { Qemu } from "./driver.ts";
import { parseSize, qemuArgs } from "./machine.ts";

const UBOOT = "/usr/lib/u-boot/qemu_arm64/u-boot.bin";
const HAVE_QEMU = Bun.which("qemu-system-aarch64") !== null && existsSync(UBOOT);
if (!HAVE_QEMU) console.warn(`skipping the QEMU boots: install qemu-system-arm and u-boot-qemu (need qemu-system-aarch64 and ${UBOOT})`);

let served: Served<QemuClient> | undefined;
const dirs: string[] = [];
afterEach(async () => {
  await served?.close();
  served = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "jmp-qemu-test-"));
  dirs.push(d);
  return d;
}

const board = (config: Record<string, unknown>, type = "jumpstarter_driver_qemu.driver.Qemu") =>
  parseExporterConfig({ export: { board: { type, config } } }, "lab.yaml");

async function serveBoard(config: Record<string, unknown>): Promise<QemuClient> {
  served = await serve<QemuClient>(board(config, "Qemu"));
  return served.client.child("board", QemuClient);
}

/** The served board's driver, for what only the exporter sees. */
const boardDriver = () => (served!.session.root as Composite).children.board as Qemu;

test("sizes read as upstream writes them", () => {
  expect(parseSize("512M")).toBe(512 * 2 ** 20);
  expect(parseSize("20G")).toBe(20 * 2 ** 30);
  expect(parseSize("1GiB")).toBe(2 ** 30);
  expect(parseSize("1GB")).toBe(1e9);
  expect(parseSize("4096")).toBe(4096);
  expect(parseSize("lots")).toBeUndefined();
  expect(parseSize("0")).toBeUndefined();
});

test("the command line: no network unless ports are forwarded, paths survive commas", () => {
  const base = {
    arch: "aarch64", accel: "tcg" as const, smp: 1, memBytes: 2 ** 29, hostfwd: {}, serialSocket: "/tmp/a,b/console.sock", extraArgs: ["-s"],
  };
  const plain = qemuArgs({ ...base, bios: "/fw/u-boot.bin", disk: { path: "/img/a,b.img", format: "raw" } });
  expect(plain.join(" ")).toContain("-machine virt -accel tcg -cpu cortex-a57 -smp 1 -m 512M");
  expect(plain).toContain("socket,id=console,path=/tmp/a,,b/console.sock,server=on,wait=on");
  expect(plain.join(" ")).toContain("-nic none");
  expect(plain).toContain(JSON.stringify({ driver: "raw", "node-name": "disk0", file: { driver: "file", filename: "/img/a,b.img" } }));
  expect(plain.at(-1)).toBe("-s");
  const net = qemuArgs({ ...base, arch: "x86_64", hostfwd: { ssh: { protocol: "tcp", hostaddr: "127.0.0.1", hostport: 2222, guestport: 22 } } });
  expect(net.join(" ")).toContain("-machine q35");
  expect(net.join(" ")).toContain("-netdev user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22 -device virtio-net-pci,netdev=net0,romfile=");
  expect(net).not.toContain("-nic");
});

test("both type names load; config mistakes name the key", async () => {
  served = await serve<QemuClient>(board({ arch: "aarch64", hostfwd: { ssh: { hostport: 40022, guestport: 22 } } }));
  const b = served.client.child("board", QemuClient);
  expect(Object.keys(b.children).sort()).toEqual(["console", "flasher", "power", "ssh"]);
  expect(b.child("power")).toBeInstanceOf(PowerClient);
  expect(b.child("console")).toBeInstanceOf(SerialClient);
  expect(b.child("ssh")).toBeInstanceOf(NetworkClient);
  expect(b.child("flasher").labels["jumpstarter.dev/client"]).toBe("jumpstarter_driver_opendal.client.FlasherClient");
  expect(await b.getHostname()).toBe("demo");
  await served.close();
  served = undefined;
  const bad: [Record<string, unknown>, string][] = [
    [{ mem: "lots" }, "lab.yaml: export.board.config: mem: 'lots' is not a size"],
    [{ arch: "arm 64" }, "arch: expected a QEMU architecture"],
    [{ hostfwd: { power: { hostport: 1, guestport: 2 } } }, "hostfwd.power: 'power' is the name of one of the board's own drivers"],
    [{ hostfwd: { a: { hostport: 5, guestport: 22 }, b: { hostport: 5, guestport: 80 } } }, "hostfwd.b: host port 127.0.0.1:5 is already forwarded"],
    [{ hostfwd: { a: { hostport: 70000, guestport: 22 } } }, "export.board.config.hostfwd.a.hostport: expected an integer from 1 to 65535"],
    [{ disk_format: "qcow2", disk_size: "1G" }, "disk_size: only raw images are grown"],
    [{ accel: "hvf" }, "export.board.config.accel: expected one of"],
  ];
  for (const [config, message] of bad) await expect(serve(board(config))).rejects.toThrow(message);
});

test("a missing QEMU is an error at power on naming the Debian package", async () => {
  const b = await serveBoard({ arch: "aarch64" });
  const path = process.env.PATH;
  process.env.PATH = tempDir();
  try {
    const error = await b.child("power", PowerClient).on().then(() => undefined, (e: Error) => e);
    expect(error?.message).toBe("on: cannot power on: qemu-system-aarch64 is not installed on this exporter (on Debian or Ubuntu: apt-get install qemu-system-arm)");
  } finally {
    process.env.PATH = path;
  }
  const x86 = await serve<QemuClient>(board({ arch: "riscv64" }));
  try {
    process.env.PATH = tempDir();
    const error = await x86.client.child("board").child("power", PowerClient).on().then(() => undefined, (e: Error) => e);
    expect(error?.message).toContain("apt-get install qemu-system-misc");
  } finally {
    process.env.PATH = path;
    await x86.close();
  }
});

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** 2 MiB of zeros with a marker in sector 2048. */
function diskImage(marker: string): Uint8Array {
  const img = new Uint8Array(2 * 2 ** 20);
  img.set(new TextEncoder().encode(marker), 2048 * 512);
  return img;
}

async function flash(b: QemuClient, data: Uint8Array, target?: string): Promise<unknown> {
  const flasher = b.child("flasher");
  const { handle, done } = await flasher.resource(new Response(data).body!);
  const [result] = await Promise.all([flasher.call("flash", handle, target ?? null), done]);
  return result;
}

async function dump(b: QemuClient, target?: string): Promise<Uint8Array> {
  const flasher = b.child("flasher");
  const { handle, stream } = await flasher.resource(new ReadableStream({ start: (c) => c.close() }));
  const [, bytes] = await Promise.all([flasher.call("dump", handle, target ?? null), new Response(stream.readable).bytes()]);
  return bytes;
}

test.skipIf(!HAVE_QEMU)("flash, boot U-Boot, read the disk from the console, power off", async () => {
  const dir = tempDir();
  const disk = join(dir, "disk.img");
  const b = await serveBoard({ arch: "aarch64", bios: UBOOT, smp: 1, disk, disk_size: "4M" });
  expect(await flash(b, diskImage("JMP-DISK-OK"))).toEqual({ bytes: 2 * 2 ** 20 });
  expect(readFileSync(disk).subarray(2048 * 512, 2048 * 512 + 11).toString()).toBe("JMP-DISK-OK");
  const power = b.child("power", PowerClient);
  await power.on();
  // Nobody reads while U-Boot starts: its first lines wait for the first client.
  await eventually(() => expect(boardDriver().uart.pending).toBeGreaterThanOrEqual(200), { what: "the boot log to start with nobody reading", timeout: 15_000 });
  const con = await openConsole(b.child("console"), { timeout: 15_000 });
  await con.expect("U-Boot 20");
  await con.expect("Hit any key to stop autoboot");
  await con.send("\r");
  await con.expect("=> ");
  await con.sendLine("virtio scan; virtio read ${loadaddr} 800 1; md.b ${loadaddr} 10");
  // md.b shows the bytes and their text; the marker is in sector 0x800.
  await con.expect(/[0-9a-f]{8}: 4a 4d 50 2d 44 49 53 4b 2d 4f 4b 00 00 00 00 00 +JMP-DISK-OK\.{5}/);
  await con.expect("=> ");
  // disk_size grew the flashed image at power on.
  expect(readFileSync(disk).byteLength).toBe(4 * 2 ** 20);
  const busy = await flash(b, diskImage("X")).then(() => undefined, (e: Error) => e);
  expect(busy?.message).toBe("flash: cannot flash while the board is powered on; power it off first");
  await power.off();
  await con.close();
  const back = await dump(b);
  expect(back.byteLength).toBe(4 * 2 ** 20);
  expect(new TextDecoder().decode(back.subarray(2048 * 512, 2048 * 512 + 11))).toBe("JMP-DISK-OK");
}, 30_000);

test.skipIf(!HAVE_QEMU)("a flashed bios boots; the guest powering itself off is noticed; ports are forwarded", async () => {
  const port = await freePort();
  const b = await serveBoard({ arch: "aarch64", smp: 1, hostfwd: { web: { hostport: port, guestport: 80 } } });
  await flash(b, readFileSync(UBOOT), "bios");
  expect((await dump(b, "bios")).byteLength).toBe(readFileSync(UBOOT).byteLength);
  const unknown = await flash(b, new Uint8Array(1), "boot").then(() => undefined, (e: Error) => e);
  expect(unknown?.message).toContain("unknown flash target \"boot\": this board has 'root' (the disk, the default) and 'bios'");
  const power = b.child("power", PowerClient);
  await power.on();
  const con = await openConsole(b.child("console"), { timeout: 15_000 });
  // With hostfwd the guest has a network card, and QEMU listens on the host port.
  await con.expect(/Net: +eth0: virtio-net/);
  await con.expect("Hit any key to stop autoboot");
  await con.send("\r");
  await con.expect("=> ");
  const web = b.child("web", NetworkClient);
  expect(await web.call("address")).toBe(`tcp://127.0.0.1:${port}`);
  await new Promise<void>((resolve, reject) => net.connect(port, "127.0.0.1").once("connect", function (this: net.Socket) {
    this.destroy();
    resolve();
  }).once("error", reject));
  await con.sendLine("poweroff");
  // QEMU exits and the driver notices; powering on again starts a fresh one.
  await eventually(() => expect(boardDriver().vm.running).toBe(false), { what: "the driver to see QEMU exit", timeout: 15_000 });
  await power.on();
  await con.expect("U-Boot 20");
  await con.close();
  await power.off();
  const reading = await (async () => {
    for await (const r of power.read()) return r;
  })().then(() => undefined, (e: Error) => e);
  expect(reading?.message).toBe("read: a QEMU board has no power meter");
}, 30_000);
