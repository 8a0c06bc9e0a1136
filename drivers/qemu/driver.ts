/**
 * Qemu: a virtual board, as upstream's jumpstarter_driver_qemu. A composite whose
 * children are `power` (starts and stops qemu-system-<arch>), `console` (the
 * guest's serial port, for upstream's serial client), `flasher` (writes the disk
 * image) and one TCP network driver per `hostfwd` entry, named by its key.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { config, type ConfigOf, Driver, exported, InvalidArgumentError, UnavailableError } from "@jumpstarter/driver";
import { Uart } from "../dutsim/uart.ts";
import { TcpNetwork } from "../network/driver.ts";
import { QemuConsole, QemuFlasher, QemuPower } from "./children.ts";
import { prepareRawDisk } from "./disk.ts";
import { debianPackage, hostArch, parseSize, qemuArgs } from "./machine.ts";
import { QemuVm } from "./vm.ts";
import { QEMU_CLIENT } from "./clients.ts";

export { QEMU_CLIENT };

const port = (description: string) => config.number({ integer: true, min: 1, max: 65535, description });

const hostfwdShape = {
  protocol: config.withDefault(config.oneOf(["tcp"], { description: "only tcp, as upstream" }), "tcp"),
  hostaddr: config.withDefault(config.string({ nonEmpty: true, description: "host address to listen on" }), "127.0.0.1"),
  hostport: port("host port"),
  guestport: port("guest port"),
};

const path = (description: string) => config.optional(config.string({ nonEmpty: true, description }));

const shape = {
  arch: config.withDefault(config.string({ nonEmpty: true, description: "guest architecture: the * of qemu-system-* (aarch64, x86_64, …)" }), hostArch()),
  machine: config.optional(config.string({ nonEmpty: true, description: "QEMU machine type (default: virt on Arm and RISC-V, q35 on x86)" })),
  cpu: config.optional(config.string({ nonEmpty: true, description: "QEMU CPU model (default: host with KVM, else a generic one)" })),
  accel: config.withDefault(config.oneOf(["auto", "kvm", "tcg"], { description: "auto: KVM when the guest has the host's architecture and /dev/kvm is usable" }), "auto"),
  smp: config.withDefault(config.number({ integer: true, min: 1, max: 512, description: "number of CPUs" }), 2),
  mem: config.withDefault(config.string({ nonEmpty: true, description: "memory size (512M, 2G)" }), "512M"),
  bios: path("firmware image given to -bios (e.g. /usr/lib/u-boot/qemu_arm64/u-boot.bin); a flashed 'bios' wins"),
  kernel: path("kernel image given to -kernel"),
  initrd: path("initial ramdisk given to -initrd"),
  append: config.optional(config.string({ description: "kernel command line given to -append" })),
  disk: path("the disk image file (default: a file that lasts one lease, as upstream)"),
  disk_format: config.withDefault(config.oneOf(["raw", "qcow2"], { description: "format of the disk image (never guessed: a guessed qcow2 could name host files as its backing file)" }), "raw"),
  disk_size: config.optional(config.string({ nonEmpty: true, description: "grow (or create) the raw disk image to this size at power on (20G)" })),
  hostfwd: config.withDefault(config.record(config.object(hostfwdShape), { description: "forwarded TCP ports: name → {hostaddr, hostport, guestport}" }), {}),
  hostname: config.withDefault(config.string({ nonEmpty: true, description: "the guest's host name, as reported to clients" }), "demo"),
  username: config.withDefault(config.string({ nonEmpty: true, description: "a guest login, as reported to clients" }), "jumpstarter"),
  password: config.withDefault(config.string({ description: "that login's password, as reported to clients" }), "password"),
  extra_args: config.withDefault(config.list(config.string(), { description: "more qemu-system arguments, appended as given" }), []),
  console_buffer: config.withDefault(config.number({ integer: true, min: 1024, max: 64 * 2 ** 20, description: "bytes of console output kept while no client reads" }), 2 ** 20),
};

export type QemuConfig = ConfigOf<typeof shape>;

/** Names the board gives its own children; hostfwd entries may not take them. */
const RESERVED = ["power", "console", "flasher"];

function sizeOf(text: string, key: string): number {
  const bytes = parseSize(text);
  if (bytes === undefined) throw new InvalidArgumentError(`${key}: '${text}' is not a size (use e.g. 512M, 20G, 2T)`);
  return bytes;
}

/** Work directories in use; a lease's disk image there can be large, so remove them even when the exporter dies early. */
const workDirs = new Set<string>();
process.on("exit", () => {
  for (const d of workDirs) rmSync(d, { recursive: true, force: true });
});

export class Qemu extends Driver<QemuConfig> {
  static override readonly client = QEMU_CLIENT;
  static override readonly configShape = shape;
  static override readonly driverType = "composite";
  static override readonly summary = "a virtual board on qemu-system-*: power, serial console, disk flasher, forwarded ports";
  static override readonly help = {
    get_hostname: "The guest's host name",
    get_username: "A guest login name",
    get_password: "That login's password",
    set_disk_size: "Grow the disk image to this size at the next power on",
    set_memory_size: "Memory size for the next power on",
  };

  readonly vm: QemuVm;
  readonly uart: Uart;
  private memBytes: number;
  private diskBytes?: number;
  private workDir?: string;

  constructor(cfg: QemuConfig) {
    super(cfg);
    if (!/^[a-z0-9_]+$/.test(cfg.arch)) throw new InvalidArgumentError(`arch: expected a QEMU architecture such as aarch64 or x86_64, got '${cfg.arch}'`);
    this.memBytes = sizeOf(cfg.mem, "mem");
    if (cfg.disk_size !== undefined) {
      if (cfg.disk_format !== "raw") throw new InvalidArgumentError("disk_size: only raw images are grown by the driver; resize a qcow2 image with qemu-img");
      this.diskBytes = sizeOf(cfg.disk_size, "disk_size");
    }
    const hostPorts = new Set<string>();
    for (const [name, f] of Object.entries(cfg.hostfwd)) {
      if (RESERVED.includes(name)) throw new InvalidArgumentError(`hostfwd.${name}: '${name}' is the name of one of the board's own drivers; choose another`);
      const key = `${f.hostaddr}:${f.hostport}`;
      if (hostPorts.has(key)) throw new InvalidArgumentError(`hostfwd.${name}: host port ${key} is already forwarded by another entry`);
      hostPorts.add(key);
    }
    this.uart = new Uart(cfg.console_buffer);
    // The session swaps `this.log` for one that reaches clients; look it up per line.
    this.vm = new QemuVm(this.uart, { info: (m) => this.log.info(m), warn: (m) => this.log.warn(m) });
    this.children = { power: new QemuPower(this), console: new QemuConsole(this), flasher: new QemuFlasher(this) };
    for (const [name, f] of Object.entries(cfg.hostfwd)) {
      this.children[name] = TcpNetwork.create({ host: f.hostaddr, port: f.hostport });
    }
  }

  /** Files that live as long as this driver instance (one lease): sockets, a default disk. */
  private dir(): string {
    if (!this.workDir) {
      this.workDir = mkdtempSync(join(tmpdir(), "jmp-qemu-"));
      workDirs.add(this.workDir);
    }
    return this.workDir;
  }

  /** Where a flasher target lives: `root` is the disk, `bios` a firmware image for -bios. */
  targetPath(target: unknown): string {
    if (target === undefined || target === null || target === "root") return this.config.disk ?? join(this.dir(), "root");
    if (target === "bios") return join(this.dir(), "bios");
    throw new InvalidArgumentError(`unknown flash target ${JSON.stringify(target)}: this board has 'root' (the disk, the default) and 'bios'`);
  }

  /** The firmware to boot: a flashed one first, else the configured file. */
  biosPath(): string | undefined {
    const flashed = join(this.dir(), "bios");
    return existsSync(flashed) ? flashed : this.config.bios;
  }

  async powerOn(): Promise<void> {
    const c = this.config;
    const binary = `qemu-system-${c.arch}`;
    // PATH as it is now, not as it was when the process started.
    const exe = Bun.which(binary, { PATH: process.env.PATH ?? "" });
    if (!exe) {
      throw new UnavailableError(`cannot power on: ${binary} is not installed on this exporter (on Debian or Ubuntu: apt-get install ${debianPackage(c.arch)})`);
    }
    const bios = this.biosPath();
    for (const [key, file] of [["bios", bios], ["kernel", c.kernel], ["initrd", c.initrd]] as const) {
      if (file && !existsSync(file)) throw new InvalidArgumentError(`cannot power on: ${key} ${file} does not exist`);
    }
    const diskPath = this.targetPath("root");
    const haveDisk = c.disk_format === "raw"
      ? await prepareRawDisk(diskPath, this.diskBytes, (m) => this.log.info(m))
      : existsSync(diskPath);
    if (!haveDisk) this.log.info("no disk image yet (flash one, or set disk_size): booting without a disk");
    const serialSocket = join(this.dir(), "console.sock");
    rmSync(serialSocket, { force: true });
    const args = qemuArgs({
      arch: c.arch, machine: c.machine, cpu: c.cpu, accel: c.accel, smp: c.smp, memBytes: this.memBytes,
      bios, kernel: c.kernel, initrd: c.initrd, append: c.append,
      disk: haveDisk ? { path: diskPath, format: c.disk_format } : undefined,
      hostfwd: c.hostfwd, serialSocket, extraArgs: c.extra_args,
    });
    this.log.info(`starting ${binary} ${args.join(" ")}`);
    await this.vm.start([exe, ...args], serialSocket);
  }

  @exported
  async getHostname(): Promise<string> {
    return this.config.hostname;
  }

  @exported
  async getUsername(): Promise<string> {
    return this.config.username;
  }

  @exported
  async getPassword(): Promise<string> {
    return this.config.password;
  }

  @exported
  async setDiskSize(size: unknown): Promise<void> {
    if (typeof size !== "string") throw new InvalidArgumentError(`set_disk_size expects a size such as "20G", got ${JSON.stringify(size)}`);
    if (this.config.disk_format !== "raw") throw new InvalidArgumentError("only raw disk images are grown by the driver; resize a qcow2 image with qemu-img");
    this.diskBytes = sizeOf(size, "size");
  }

  @exported
  async setMemorySize(size: unknown): Promise<void> {
    if (typeof size !== "string") throw new InvalidArgumentError(`set_memory_size expects a size such as "2G", got ${JSON.stringify(size)}`);
    this.memBytes = sizeOf(size, "size");
  }

  override async close(): Promise<void> {
    await this.vm.stop();
    this.uart.closeAll();
    if (this.workDir) {
      rmSync(this.workDir, { recursive: true, force: true });
      workDirs.delete(this.workDir);
    }
  }
}
