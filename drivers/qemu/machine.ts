/**
 * What a QEMU board is made of, turned into a `qemu-system-*` command line. Pure
 * functions: the driver decides the values, this only spells them for QEMU.
 */
import { accessSync, constants } from "node:fs";

export interface Hostfwd {
  protocol: "tcp";
  hostaddr: string;
  hostport: number;
  guestport: number;
}

export interface MachineSpec {
  arch: string;
  machine?: string;
  cpu?: string;
  accel: "auto" | "kvm" | "tcg";
  smp: number;
  memBytes: number;
  bios?: string;
  kernel?: string;
  initrd?: string;
  append?: string;
  disk?: { path: string; format: "raw" | "qcow2" };
  hostfwd: Record<string, Hostfwd>;
  serialSocket: string;
  extraArgs: string[];
}

/** QEMU's name for the architecture of this machine. */
export function hostArch(): string {
  const names: Record<string, string> = { x64: "x86_64", arm64: "aarch64", ia32: "i386" };
  return names[process.arch] ?? process.arch;
}

/** The Debian package that installs `qemu-system-<arch>`. */
export function debianPackage(arch: string): string {
  if (arch === "aarch64" || arch === "arm") return "qemu-system-arm";
  if (arch === "x86_64" || arch === "i386") return "qemu-system-x86";
  if (arch.startsWith("ppc")) return "qemu-system-ppc";
  if (arch.startsWith("mips")) return "qemu-system-mips";
  if (arch.startsWith("sparc")) return "qemu-system-sparc";
  if (arch === "s390x") return "qemu-system-s390x";
  return "qemu-system-misc";
}

const DEFAULT_MACHINE: Record<string, string> = { aarch64: "virt", arm: "virt", riscv64: "virt", riscv32: "virt", x86_64: "q35", i386: "q35" };
// Upstream's choices: CPUs that every guest of the architecture runs on.
const DEFAULT_CPU: Record<string, string> = { aarch64: "cortex-a57", arm: "cortex-a15", x86_64: "qemu64,+ssse3,+sse4.1,+sse4.2,+popcnt" };

function kvmUsable(arch: string): boolean {
  if (arch !== hostArch()) return false;
  try {
    accessSync("/dev/kvm", constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** QEMU reads `,` inside an option value as a separator unless doubled. */
function escapeOption(value: string): string {
  return value.replaceAll(",", ",,");
}

export function qemuArgs(spec: MachineSpec): string[] {
  const kvm = spec.accel === "kvm" || (spec.accel === "auto" && kvmUsable(spec.arch));
  const machine = spec.machine ?? DEFAULT_MACHINE[spec.arch];
  const cpu = spec.cpu ?? (kvm ? "host" : DEFAULT_CPU[spec.arch]);
  const args = ["-nodefaults", "-no-user-config", "-display", "none"];
  if (machine) args.push("-machine", machine);
  args.push("-accel", kvm ? "kvm" : "tcg");
  if (cpu) args.push("-cpu", cpu);
  args.push("-smp", String(spec.smp), "-m", `${Math.ceil(spec.memBytes / 2 ** 20)}M`);
  // wait=on: QEMU holds the guest until the driver is connected, so the first byte
  // of the boot log is already captured.
  args.push(
    "-chardev", `socket,id=console,path=${escapeOption(spec.serialSocket)},server=on,wait=on`,
    "-serial", "chardev:console",
  );
  const forwards = Object.values(spec.hostfwd);
  if (forwards.length === 0) {
    // No network at all, so firmware does not spend its boot trying DHCP and TFTP.
    args.push("-nic", "none");
  } else {
    const rules = forwards.map((f) => `hostfwd=${f.protocol}:${f.hostaddr}:${f.hostport}-:${f.guestport}`);
    // romfile= : no iPXE option ROM (Debian ships it in a separate package), and
    // the guest's firmware has its own virtio-net driver anyway.
    args.push("-netdev", ["user", "id=net0", ...rules].join(","), "-device", "virtio-net-pci,netdev=net0,romfile=");
  }
  if (spec.bios) args.push("-bios", spec.bios);
  if (spec.kernel) args.push("-kernel", spec.kernel);
  if (spec.initrd) args.push("-initrd", spec.initrd);
  if (spec.append) args.push("-append", spec.append);
  if (spec.disk) {
    // JSON needs no escaping of the path.
    const node = { driver: spec.disk.format, "node-name": "disk0", file: { driver: "file", filename: spec.disk.path } };
    args.push("-blockdev", JSON.stringify(node), "-device", "virtio-blk-pci,drive=disk0,bootindex=1");
  }
  return [...args, ...spec.extraArgs];
}

/**
 * A size as upstream writes it: `512M`, `20G`, `2T` and `1GiB` are binary
 * units, `1GB` is decimal, a bare number is bytes. Undefined when unreadable.
 */
export function parseSize(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(?:([kmgtp])(i?b)?|b)?\s*$/i.exec(text);
  if (!m) return undefined;
  const power = m[2] ? "kmgtp".indexOf(m[2].toLowerCase()) + 1 : 0;
  const base = m[3] && m[3].toLowerCase() === "b" ? 1000 : 1024;
  const bytes = Number(m[1]) * base ** power;
  return Number.isFinite(bytes) && bytes > 0 ? Math.round(bytes) : undefined;
}
