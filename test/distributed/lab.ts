/**
 * A lab on one machine for the distributed-mode tests, set up the way the README
 * tells users to: `jmp controller run` on a temporary data dir, `jmp admin create
 * … --save`, exporters served by `jmp run --exporter ALIAS`, clients by alias.
 * Every process it starts is killed by `close()`, whatever the test did.
 */
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { eventually } from "../../src/api/eventually.ts";
import { readLines } from "../../src/common/lines.ts";
import { connectAdmin } from "../../src/client/admin-client.ts";
import { ADMIN_CONFIG_FILE, loadAdminConfig } from "../../src/common/client-config.ts";
import { freePort, jmp, JMP, tcpAccepts, tempDir, whileRunning, type Result } from "../helpers.ts";

const ANSI = /\x1b\[[0-9;]*m/g;

/** A long-running jmp process whose output lines (stdout and stderr) are kept with their arrival time. */
export class Proc {
  readonly lines: { at: number; text: string }[] = [];
  readonly proc;
  exitCode: number | null = null;
  private wake: () => void = () => {};

  constructor(readonly what: string, args: string[], env: Record<string, string>) {
    this.proc = Bun.spawn([JMP, ...args], { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: { ...process.env, NO_COLOR: "1", ...env } });
    void this.collect(this.proc.stdout);
    void this.collect(this.proc.stderr);
    void this.proc.exited.then((code) => {
      this.exitCode = code;
      this.wake();
    });
  }

  get pid(): number {
    return this.proc.pid;
  }

  get output(): string {
    return this.lines.map((l) => l.text).join("\n");
  }

  private async collect(stream: ReadableStream<Uint8Array>): Promise<void> {
    await readLines(stream, (lines) => {
      const at = performance.now();
      this.lines.push(...lines.map((l) => ({ at, text: l.replace(ANSI, "") })));
      this.wake();
    });
    this.wake();
  }

  /** How many lines so far match. */
  count(pattern: RegExp | string): number {
    return this.lines.filter((l) => matches(l.text, pattern)).length;
  }

  /**
   * Waits for a line matching `pattern` at or after line `from`; resolves to its index.
   * Fails at once if the process exits first, with everything it said.
   */
  async waitLine(pattern: RegExp | string, opts: { from?: number; timeoutMs?: number } = {}): Promise<number> {
    const timeoutMs = opts.timeoutMs ?? 15_000;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.lines.findIndex((l, n) => n >= (opts.from ?? 0) && matches(l.text, pattern));
      if (i >= 0) return i;
      const left = deadline - Date.now();
      if (this.exitCode !== null || left <= 0) {
        const why = this.exitCode !== null ? `exited with ${this.exitCode}` : `did not say it within ${timeoutMs} ms`;
        throw new Error(`${this.what} ${why} while waiting for ${pattern}; its output:\n${this.output}`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 250));
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** Aborts when the process exits (with what it said): for eventually(), so a wait on a dead process ends at once. */
  get running(): AbortSignal {
    return whileRunning(this.proc, this.what, () => this.output);
  }

  /** Resolves to the exit code, or fails if the process is still running after `timeoutMs`. */
  async exited(timeoutMs = 15_000): Promise<number> {
    const code = await within(this.proc.exited, timeoutMs);
    if (code === null) throw new Error(`${this.what} still runs ${timeoutMs} ms later; its output:\n${this.output}`);
    return code;
  }

  signal(sig: NodeJS.Signals): void {
    this.proc.kill(sig);
  }

  /** SIGTERM, then SIGKILL if it lingers: cleanup must not hang on a stuck process. */
  async stop(): Promise<void> {
    if (this.exitCode !== null) return;
    this.proc.kill("SIGTERM");
    const code = await within(this.proc.exited, 5000);
    if (code === null) {
      this.proc.kill("SIGKILL");
      await this.proc.exited;
      throw new Error(`${this.what} still ran 5 s after SIGTERM (killed); its output:\n${this.output}`);
    }
  }
}

/** The promise's value, or null when it takes longer than `ms`. */
async function within<T>(p: Promise<T>, ms: number): Promise<T | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), ms)));
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

function matches(text: string, pattern: RegExp | string): boolean {
  return typeof pattern === "string" ? text.includes(pattern) : pattern.test(text);
}

/** A lease as `jmp lease get -o json` prints it (the fields the tests look at). */
export interface LeaseJson {
  name: string;
  selector: string;
  exporter?: string;
  client?: string;
  state: "Ready" | "Pending" | "Ended" | "Unsatisfiable" | "Invalid" | "Unknown";
  reason: string;
  message: string;
}

/** An exporter as `jmp admin get exporters -o json` prints it: the controller's own record. */
export interface AdminExporterJson {
  name: string;
  online: boolean;
  status: string;
  lease: string;
}

/** The drivers every test exporter serves. */
export const EXPORT = { power: { type: "jumpstarter_driver_power.driver.MockPower" } };

export class Lab {
  readonly dir = tempDir("jmp-dist-");
  readonly dataDir = join(this.dir.path, "data");
  readonly env: Record<string, string> = { JMP_CLIENT_CONFIG_HOME: join(this.dir.path, "config") };
  readonly procs = new Set<Proc>();
  readonly exporters = new Map<string, Proc>();
  /** Every one-shot jmp command, for the message when cleanup finds a stuck process. */
  readonly history: ({ args: string[]; ms: number } & Result)[] = [];
  controller!: Proc;
  port = 0;
  /** One admin connection for watching the controller's records (what `jmp admin get` prints). */
  private watcher?: ReturnType<typeof connectAdmin>;
  /** What the controller tells clients and exporters to use (--advertise): its own endpoint, unless a test puts a relay in between. */
  advertise?: string;

  /** `beforeController` runs once the port is chosen, e.g. to start a relay to it and advertise that. */
  /** More arguments for `jmp controller run` (e.g. `--log-format json`). */
  controllerArgs: string[] = [];

  static async start(opts: { beforeController?: (lab: Lab) => Promise<void>; controllerArgs?: string[] } = {}): Promise<Lab> {
    const lab = new Lab();
    lab.controllerArgs = opts.controllerArgs ?? [];
    try {
      lab.port = await freePort();
      await opts.beforeController?.(lab);
      await lab.startController();
    } catch (e) {
      await lab.close();
      throw e;
    }
    return lab;
  }

  get endpoint(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Starts (or restarts, on the same data dir and port) the controller and waits until it listens. */
  async startController(): Promise<Proc> {
    const p = this.spawn("the controller", ["controller", "run", "--data-dir", this.dataDir, "--listen", this.endpoint, "--advertise", this.advertise ?? this.endpoint, ...this.controllerArgs]);
    this.controller = p;
    await eventually(() => tcpAccepts(this.port), { what: `the controller to listen on ${this.endpoint}`, interval: 20, timeout: 15_000, signal: p.running });
    // A first start writes admin.yaml (which every `jmp admin` here reads) just after its port accepts.
    await eventually(() => statSync(join(this.dataDir, ADMIN_CONFIG_FILE)), { what: `the controller to write ${ADMIN_CONFIG_FILE}`, interval: 20, timeout: 15_000, signal: p.running });
    return p;
  }

  spawn(what: string, args: string[]): Proc {
    const p = new Proc(what, args, this.env);
    this.procs.add(p);
    return p;
  }

  async jmp(args: string[], opts: { timeoutMs?: number } = {}): Promise<Result> {
    const t0 = performance.now();
    const r = await jmp(args, { env: this.env, timeoutMs: opts.timeoutMs });
    this.history.push({ args, ms: Math.round(performance.now() - t0), ...r });
    return r;
  }

  /** Runs jmp and returns its stdout; anything but exit 0 fails with what it printed. */
  async ok(args: string[]): Promise<string> {
    const r = await this.jmp(args);
    if (r.code !== 0) throw new Error(`jmp ${args.join(" ")} exited with ${r.code}:\n${r.stderr}${r.stdout}`);
    return r.stdout;
  }

  admin(...args: string[]): Promise<string> {
    return this.ok(["admin", ...args, "--data-dir", this.dataDir]);
  }

  async addClient(name: string): Promise<void> {
    await this.admin("create", "client", name, "--save");
  }

  /** Registers an exporter, saves its config under its name and gives it drivers, as a user edits the saved file. */
  async addExporter(name: string, labels: Record<string, string>): Promise<string> {
    const file = (await this.admin("create", "exporter", name, ...Object.entries(labels).flatMap(([k, v]) => ["-l", `${k}=${v}`]), "--save")).trim();
    const doc = parse(readFileSync(file, "utf8")) as Record<string, unknown>;
    doc.export = EXPORT;
    writeFileSync(file, stringify(doc));
    return file;
  }

  /** `jmp run --exporter NAME`, once the controller has it online with a status it reported. */
  async runExporter(name: string, extraArgs: string[] = []): Promise<Proc> {
    const p = this.spawn(`exporter ${name}`, ["run", "--exporter", name, ...extraArgs]);
    this.exporters.set(name, p);
    await this.exporterUntil(name, (e) => e.online && (e.status === "AVAILABLE" || e.status === "LEASE_READY"), "to register and report its status");
    return p;
  }

  /**
   * Polls the controller's record of exporter `name` until `ok` holds (fails at once
   * if its jmp run exits) and returns it.
   */
  async exporterUntil(name: string, ok: (e: AdminExporterJson) => boolean, what: string, timeoutMs = 15_000): Promise<AdminExporterJson> {
    this.watcher ??= connectAdmin(loadAdminConfig({}, {}, this.dataDir));
    const watcher = this.watcher;
    return eventually(async () => {
      const e = (await watcher.listExporters("default")).find((x) => x.name === name);
      const record = e && { name: e.name, online: e.online, status: e.status, lease: e.lease };
      if (!record || !ok(record)) throw new Error(`the controller has exporter ${name} as ${JSON.stringify(record ?? "unknown")}`);
      return record;
    }, { what: `exporter ${name} ${what}`, interval: 20, timeout: timeoutMs, signal: this.runningExporter(name)?.running });
  }

  /** The jmp run serving exporter `name`, if one is running. */
  private runningExporter(name: string): Proc | undefined {
    const p = this.exporters.get(name);
    return p?.exitCode === null ? p : undefined;
  }

  /** Until exporter `name` serves lease `lease`: it holds it and has reported LEASE_READY (its session is up). */
  serving(name: string, lease: string): Promise<AdminExporterJson> {
    return this.exporterUntil(name, (e) => e.lease === lease && e.status === "LEASE_READY", `to serve lease ${lease}`);
  }

  /**
   * Until exporter `name` is done with lease `lease`: it no longer holds it, and it has
   * reported AVAILABLE since (its session is closed), or already holds the next lease
   * (which the controller hands over only after that report).
   */
  doneWith(name: string, lease: string): Promise<AdminExporterJson> {
    return this.exporterUntil(name, (e) => e.lease !== lease && (e.lease !== "" || e.status === "AVAILABLE"), `to be done with lease ${lease}`);
  }

  async createLease(client: string, selector: string, duration = "10m"): Promise<LeaseJson> {
    const out = await this.ok(["lease", "create", "-l", selector, "--duration", duration, "--client", client, "-o", "json"]);
    return (JSON.parse(out) as LeaseJson[])[0]!;
  }

  async lease(name: string, client: string): Promise<LeaseJson> {
    return (JSON.parse(await this.ok(["lease", "get", name, "--client", client, "-o", "json"])) as LeaseJson[])[0]!;
  }

  /** Every open lease of every client, as the admin sees them. */
  async openLeases(): Promise<LeaseJson[]> {
    return JSON.parse(await this.admin("get", "leases", "-o", "json")) as LeaseJson[];
  }

  async adminExporters(): Promise<AdminExporterJson[]> {
    return JSON.parse(await this.admin("get", "exporters", "-o", "json")) as AdminExporterJson[];
  }

  /** The controller's resident set size in kB, from /proc. */
  controllerRssKb(): number {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${this.controller.pid}/status`, "utf8"));
    return m ? Number(m[1]) : 0;
  }

  /**
   * Stops everything: shells and exporters first, the controller last, as an admin
   * would (exporters report OFFLINE and unregister on the way out). A process that
   * ignores SIGTERM fails the test, with the slow commands that preceded it.
   */
  async close(): Promise<void> {
    this.watcher?.close();
    const others = [...this.procs].filter((p) => p !== this.controller);
    const results = await Promise.allSettled(others.map((p) => p.stop()));
    results.push(...(await Promise.allSettled([this.controller?.stop()])));
    this.dir.remove();
    const stuck = results.flatMap((r) => (r.status === "rejected" ? [(r.reason as Error).message] : []));
    if (stuck.length) {
      const slow = this.history.filter((h) => h.ms > 2000).map((h) => `jmp ${h.args.join(" ")}: ${h.ms} ms, exit ${h.code}\n${h.stderr}`);
      throw new Error([...stuck, "slow commands before:", ...slow].join("\n"));
    }
  }
}
