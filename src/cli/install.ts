/**
 * `jmp exporter install` and `jmp controller install`: put the systemd units shipped in
 * packaging/ (embedded in the executable) and the service user's sysusers.d entry in
 * place. A dry run unless `--apply`: it prints every file it would write and the
 * commands to run next. `--root DIR` writes under DIR instead of / (an image being
 * built, or a scratch directory to look at first). It never runs systemctl itself.
 */
import { defineCommand } from "../common/command.ts";
import exporterUnit from "../../packaging/systemd/jmp-exporter@.service" with { type: "text" };
import controllerUnit from "../../packaging/systemd/jmp-controller.service" with { type: "text" };
import sysusers from "../../packaging/sysusers.d/jumpstarter.conf" with { type: "text" };

interface Plan {
  files: { path: string; text: string }[];
  dirs: string[];
  /** Run as root afterwards, in this order. */
  commands: string[];
  /** What must be in place before the service can start, and how to put it there (given where). */
  checks: { path: string; missing: (where: string) => string }[];
}

const SYSUSERS = { path: "/etc/sysusers.d/jumpstarter.conf", text: sysusers };
const UNIT_DIR = "/etc/systemd/system";

/** The executable the unit starts, read from its ExecStart= so the unit file stays the one truth. */
function executableCheck(unit: string, self: string): Plan["checks"][number] {
  const path = /^ExecStart=(\S+)/m.exec(unit)![1]!;
  return { path, missing: (where) => `install this executable there first: install -m 0755 ${self} ${where}` };
}

/** Scratch roots get `--root` and no `--now`: nothing there is running. */
function serviceCommands(service: string, root: string): string[] {
  if (root === "/") return ["systemd-sysusers jumpstarter.conf", "systemctl daemon-reload", `systemctl enable --now ${service}`];
  return [`systemd-sysusers --root ${root} jumpstarter.conf`, `systemctl --root ${root} enable ${service}`];
}

function exporterPlan(name: string | undefined, root: string, self: string): Plan {
  const alias = name ?? "NAME";
  const config = `/etc/jumpstarter/exporters/${alias}.yaml`;
  return {
    files: [{ path: `${UNIT_DIR}/jmp-exporter@.service`, text: exporterUnit }, SYSUSERS],
    dirs: ["/etc/jumpstarter/exporters"],
    commands: serviceCommands(`jmp-exporter@${alias}`, root),
    checks: [
      executableCheck(exporterUnit, self),
      {
        path: config,
        missing: (where) => `put the exporter config there; it holds a token, so: install -m 0640 -g jumpstarter ${alias}.yaml ${where}` +
          (name ? "" : " (NAME is yours to choose, e.g. the exporter's name)"),
      },
    ],
  };
}

function controllerPlan(root: string, self: string): Plan {
  return {
    files: [{ path: `${UNIT_DIR}/jmp-controller.service`, text: controllerUnit }, SYSUSERS],
    dirs: [],
    commands: serviceCommands("jmp-controller", root),
    checks: [executableCheck(controllerUnit, self)],
  };
}

async function carryOut(plan: Plan, root: string, apply: boolean): Promise<void> {
  const [fs, { join }, { UserError }] = await Promise.all([import("node:fs"), import("node:path"), import("../common/errors.ts")]);
  const at = (path: string) => join(root, path);
  const current = (path: string) => {
    try {
      return fs.readFileSync(at(path), "utf8");
    } catch {
      return undefined;
    }
  };
  const cannot = (path: string, e: unknown): never => {
    const err = e as NodeJS.ErrnoException;
    const why = err.code === "EACCES" || err.code === "EPERM" || err.code === "EROFS" ? "permission denied" : err.message;
    throw new UserError(`cannot write ${path}: ${why}; run it as root, or try it in a scratch directory with --root DIR`, 1);
  };
  const out: string[] = [];
  if (!apply) out.push("Dry run: nothing is written. Add --apply to write these files.", "");
  for (const file of plan.files) {
    const before = current(file.path);
    const state = before === undefined ? "new" : before === file.text ? "unchanged" : "replaces the existing file";
    if (apply) {
      if (state !== "unchanged") {
        try {
          fs.mkdirSync(join(at(file.path), ".."), { recursive: true, mode: 0o755 });
          const tmp = `${at(file.path)}.jmp-install.tmp`;
          fs.writeFileSync(tmp, file.text, { mode: 0o644 });
          fs.chmodSync(tmp, 0o644);
          fs.renameSync(tmp, at(file.path));
        } catch (e) {
          cannot(at(file.path), e);
        }
      }
      out.push(`${state === "unchanged" ? "unchanged" : "wrote"} ${at(file.path)}`);
    } else {
      out.push(`${at(file.path)} (${state}, mode 0644):`, ...file.text.trimEnd().split("\n").map((l) => `  | ${l}`), "");
    }
  }
  for (const dir of plan.dirs) {
    const exists = fs.existsSync(at(dir));
    if (apply && !exists) {
      try {
        fs.mkdirSync(at(dir), { recursive: true, mode: 0o755 });
      } catch (e) {
        cannot(at(dir), e);
      }
    }
    out.push(`${apply ? (exists ? "exists" : "created") : exists ? "directory exists:" : "would create directory"} ${at(dir)}/`);
  }
  out.push("", apply ? "Next, as root:" : "Then, as root:", ...plan.commands.map((c) => `  ${c}`));
  const missing = plan.checks.filter((c) => !fs.existsSync(at(c.path)));
  if (missing.length) out.push("", "Before it can start:", ...missing.map((c) => `  ${at(c.path)} is missing: ${c.missing(at(c.path))}`));
  console.log(out.join("\n"));
}

const common = {
  root: { type: "string", description: "write under this directory instead of / (an image, a scratch directory)", valueHint: "DIR" },
  apply: { type: "boolean", description: "write the files (without it: print what would be written)" },
} as const;

async function target(root: string | undefined): Promise<{ root: string; self: string }> {
  const [{ resolve }, { isCompiled }] = await Promise.all([import("node:path"), import("../common/self.ts")]);
  // From source there is no single file to copy: point at the build's output.
  return { root: root ? resolve(root) : "/", self: isCompiled() ? process.execPath : "dist/jmp" };
}

export const exporterInstall = defineCommand({
  meta: { name: "install", description: "Install the exporter's systemd unit and service user (dry run unless --apply)" },
  args: {
    name: { type: "positional", required: false, description: "the instance: serves /etc/jumpstarter/exporters/NAME.yaml", valueHint: "NAME" },
    ...common,
  },
  async run({ args }) {
    if (args.name) (await import("../common/paths.ts")).checkAlias(args.name, "exporter name");
    const { root, self } = await target(args.root);
    await carryOut(exporterPlan(args.name, root, self), root, Boolean(args.apply));
  },
});

export const controllerInstall = defineCommand({
  meta: { name: "install", description: "Install the controller's systemd unit and service user (dry run unless --apply)" },
  args: common,
  async run({ args }) {
    const { root, self } = await target(args.root);
    await carryOut(controllerPlan(root, self), root, Boolean(args.apply));
  },
});
