/**
 * The QEMU board end to end, as a user drives it: `jmp shell` on an exporter
 * config with a Qemu board (Debian's qemu-system-aarch64 and U-Boot); a
 * TypeScript client flashes a disk image, then `j` powers on, waits for the
 * U-Boot prompt, reads the disk from it and powers off. A second run has U-Boot
 * fetch a file from the Tftp driver. Skipped, saying why, without QEMU/U-Boot.
 */
import { afterAll, expect, test } from "bun:test";
import dgram from "node:dgram";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { defaultHostAddress } from "../drivers/http/host.ts";
import { freePort, JMP, ROOT, tempDir } from "./helpers.ts";

const UBOOT = "/usr/lib/u-boot/qemu_arm64/u-boot.bin";
const missing = [
  Bun.which("qemu-system-aarch64") ? undefined : "qemu-system-aarch64 (Debian: qemu-system-arm)",
  existsSync(UBOOT) ? undefined : `${UBOOT} (Debian: u-boot-qemu)`,
].filter(Boolean);
if (missing.length) console.warn(`skipping the QEMU board tests: not installed: ${missing.join(", ")}`);

const dir = tempDir("jmp-qemu-e2e-");
afterAll(() => dir.remove());

/** Runs `jmp shell --exporter-config CONFIG -- sh -c SCRIPT` in a scratch directory. */
async function shell(config: string, script: string, timeoutMs = 50_000) {
  const proc = Bun.spawn([JMP, "shell", "--exporter-config", config, "--", "sh", "-c", script], {
    cwd: dir.path,
    env: { ...process.env, NO_COLOR: "1" },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  return { stdout, stderr, code };
}

const lab = (exports: string) => `apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata:
  namespace: default
  name: qemu-bench
export:
${exports}`;

const MARKER = "JMP-DISK-OK";
const READ_DISK = "virtio scan; virtio read ${loadaddr} 800 1; md.b ${loadaddr} 10\\r";

test.skipIf(missing.length > 0)("flash a disk image, boot U-Boot, read the disk on the console, power off", async () => {
  // 1 MiB of zeros with the marker in sector 2048 (0x800).
  const image = new Uint8Array(2 ** 20 + 4096);
  image.set(new TextEncoder().encode(MARKER), 2048 * 512);
  writeFileSync(join(dir.path, "disk.img"), image);
  // The flashing half is a user's TypeScript test script, run inside the shell.
  const flashScript = dir.file("flash.ts", `
import { connect } from ${JSON.stringify(join(ROOT, "src/api/client.ts"))};
const board = await connect();
const flasher = board.root.child("board").child("flasher");
const { handle, done } = await flasher.resource(Bun.file("disk.img").stream());
const [result] = await Promise.all([flasher.call("flash", handle, null), done]);
console.log("flashed", JSON.stringify(result));
// connect() keeps its connection open, which would keep this process alive.
process.exit(0);
`);
  const config = dir.file("qemu.yaml", lab(`  board:
    type: jumpstarter_driver_qemu.driver.Qemu
    config:
      arch: aarch64
      bios: ${UBOOT}
      smp: 1
      mem: 256M
      disk_size: 2M
`));
  const script = [
    `${JSON.stringify(process.execPath)} ${flashScript}`,
    "j board power on",
    "start=$(date +%s%N)",
    "j board console expect 'Hit any key to stop autoboot' --timeout 20",
    "j board console expect '=> ' --send '\\r' --timeout 10",
    `echo "prompt after $(( ($(date +%s%N) - start) / 1000000 )) ms"`,
    `j board console expect '${MARKER}.....' --send '${READ_DISK}' --timeout 10`,
    "j board power off",
  ].join(" && ");
  const r = await shell(config, script);
  if (r.code !== 0) console.error(r.stdout, r.stderr);
  expect(r.code).toBe(0);
  expect(r.stdout).toContain(`flashed {"bytes":${image.byteLength}}`);
  expect(r.stdout).toContain("U-Boot 20");
  expect(r.stdout).toMatch(/1 blocks read: OK/);
  expect(r.stdout).toMatch(/[0-9a-f]{8}: 4a 4d 50 2d 44 49 53 4b 2d 4f 4b 00 00 00 00 00 +JMP-DISK-OK\.{5}/);
  const ms = Number(/prompt after (\d+) ms/.exec(r.stdout)?.[1]);
  console.log(`U-Boot prompt ${ms} ms after power on returned`);
  expect(ms).toBeLessThan(15_000);
}, 60_000);

/** Whether this machine can serve TFTP where a QEMU guest reaches it: port 69 on a non-loopback address. */
async function tftpReachable(host: string): Promise<string | undefined> {
  if (host.startsWith("127.")) return "the exporter has no non-loopback address (QEMU's user network keeps 10.0.2.2:69 for itself)";
  const socket = dgram.createSocket("udp4");
  const error = await new Promise<Error | undefined>((resolve) => {
    socket.once("error", resolve);
    socket.bind(69, host, () => resolve(undefined));
  });
  socket.close();
  return error ? `cannot listen on ${host}:69 (${error.message})` : undefined;
}

test.skipIf(missing.length > 0)("U-Boot fetches a file from the Tftp driver over the guest network", async () => {
  const host = await defaultHostAddress();
  const why = await tftpReachable(host);
  if (why) {
    console.warn(`skipping the TFTP boot: ${why}`);
    return;
  }
  writeFileSync(join(dir.path, "payload.bin"), "TFTP-PAYLOAD-OK");
  const config = dir.file("tftp.yaml", lab(`  board:
    type: Qemu
    config:
      arch: aarch64
      bios: ${UBOOT}
      smp: 1
      hostfwd:
        ssh: {hostport: ${await freePort()}, guestport: 22}
  tftp:
    type: jumpstarter_driver_tftp.driver.Tftp
    config:
      root_dir: ${join(dir.path, "tftpboot")}
      port: 69
`));
  // QEMU's user network: the guest is 10.0.2.15 behind the gateway 10.0.2.2, which
  // forwards to the exporter's own addresses.
  const fetch = "setenv ipaddr 10.0.2.15; setenv netmask 255.255.255.0; setenv gatewayip 10.0.2.2; "
    + "setenv serverip $(j tftp address | cut -d: -f1); tftpboot \\${loadaddr} payload.bin; md.b \\${loadaddr} 10\\r";
  const script = [
    "j tftp start",
    "j tftp put payload.bin",
    "j board power on",
    "j board console expect 'Hit any key to stop autoboot' --timeout 20",
    "j board console expect '=> ' --send '\\r' --timeout 10",
    `j board console expect 'TFTP-PAYLOAD-OK.' --send "${fetch}" --timeout 15`,
    "j board power off",
  ].join(" && ");
  const r = await shell(config, script);
  if (r.code !== 0) console.error(r.stdout, r.stderr);
  expect(r.code).toBe(0);
  expect(r.stdout).toContain(`TFTP from server ${host}`);
  expect(r.stdout).toContain("Bytes transferred = 15");
  expect(existsSync(join(dir.path, "tftpboot", "payload.bin"))).toBe(false);
}, 60_000);
