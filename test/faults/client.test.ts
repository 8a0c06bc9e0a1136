/**
 * Fault injection on the client side, on the built dist/jmp as users run it: a
 * controller restart under a waiting shell, a closed terminal, a silent
 * endpoint, unwritable output, a selector nothing matches, TLS spoken to the
 * wrong port, a shell killed outright, a dump cut short, a shell killed under its
 * dump. Each case was a defect a user could hit;
 * each test failed before its fix.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { eventually } from "../../src/api/eventually.ts";
import { freePort, JMP, jmp, tcpAccepts, tempDir } from "../helpers.ts";
import { writeImage } from "../fixtures/disk-image.ts";
import { EXPORT, Lab } from "../distributed/lab.ts";

const labs: Lab[] = [];
const cleanups: (() => void | Promise<void>)[] = [];

afterEach(async () => {
  await Promise.all(labs.splice(0).map((l) => l.close()));
  for (const c of cleanups.splice(0)) await c();
}, 30_000);

async function lab(opts: { exporters: string[]; clients: string[] }): Promise<Lab> {
  const l = await Lab.start();
  labs.push(l);
  for (const e of opts.exporters) await l.addExporter(e, { board: "rpi4" });
  for (const c of opts.clients) await l.addClient(c);
  await Promise.all(opts.exporters.map((e) => l.runExporter(e)));
  return l;
}

const noStackTrace = (stderr: string) => expect(stderr).not.toMatch(/^\s+at .*[:(]/m);

/** A TCP port that accepts connections and never says a word: a hung peer, a wrong port behind a proxy. */
async function silentPort(): Promise<number> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    sockets.add(s);
    s.on("error", () => {});
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  cleanups.push(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return (server.address() as { port: number }).port;
}

describe("a shell waiting in the queue", () => {
  for (const signal of ["SIGTERM", "SIGKILL"] as const) {
    test(`keeps its place through a controller restart (${signal}) and runs once the board is free`, async () => {
      const l = await lab({ exporters: ["pi-1"], clients: ["alice", "bob"] });
      const held = await l.createLease("alice", "board=rpi4");
      const shell = l.spawn("bob's jmp shell", ["shell", "-l", "board=rpi4", "--client", "bob", "--", "j", "power", "on"]);
      // Bob's view is the subject: his shell says it waits, then that it is still trying.
      const at = await shell.waitLine(/lease \S+: waiting/);
      const queued = /lease (\S+): waiting/.exec(shell.lines[at]!.text)![1]!;

      l.controller.signal(signal);
      await l.controller.exited();
      await shell.waitLine(/still trying/, { from: at });
      await l.startController();
      expect((await l.lease(queued, "bob")).state).toBe("Pending");

      await l.ok(["lease", "delete", held.name, "--client", "alice"]);
      expect(await shell.exited(30_000)).toBe(0);
      expect(shell.output).toContain(`lease ${queued}: ready on exporter pi-1`);
      expect(shell.output).toContain(`released lease ${queued}`);
      expect((await l.openLeases()).filter((x) => x.state === "Ready" || x.state === "Pending")).toEqual([]);
    }, 60_000);
  }

  for (const [signal, code] of [["SIGINT", 130], ["SIGHUP", 129], ["SIGTERM", 143]] as const) {
    test(`gives its lease back on Ctrl-C, a closed terminal or a stop (${signal})`, async () => {
      const l = await lab({ exporters: ["pi-1"], clients: ["alice", "bob"] });
      const held = await l.createLease("alice", "board=rpi4");
      const shell = l.spawn("bob's jmp shell", ["shell", "-l", "board=rpi4", "--client", "bob", "--", "true"]);
      // What bob sees before he lets go: the shell waiting for its lease, and why.
      const at = await shell.waitLine(/lease \S+: waiting/);
      const queued = /lease (\S+): waiting/.exec(shell.lines[at]!.text)![1]!;
      expect(shell.lines[at]!.text).toContain("NotAvailable");
      expect((await l.lease(queued, "bob")).state).toBe("Pending");
      shell.signal(signal);
      expect(await shell.exited()).toBe(code);
      expect(shell.output).toContain(`released lease ${queued}`);
      const v = await l.lease(queued, "bob");
      expect({ state: v.state, reason: v.reason }).toEqual({ state: "Ended", reason: "Released" });
      // Alice's release must not hand the board to the abandoned lease.
      await l.ok(["lease", "delete", held.name, "--client", "alice"]);
      await l.doneWith("pi-1", held.name);
      expect((await l.lease(queued, "bob")).exporter).toBeUndefined();
    }, 40_000);
  }
});

test("a queued shell killed outright (SIGKILL) loses its place: the controller gives the lease back once the client is silent", async () => {
  const l = await lab({ exporters: ["pi-1"], clients: ["alice", "bob"] });
  const held = await l.createLease("alice", "board=rpi4");
  const shell = l.spawn("bob's jmp shell", ["shell", "-l", "board=rpi4", "--client", "bob", "--", "true"]);
  // The shell says it waits once it holds its place: what bob sees before it is killed.
  const at = await shell.waitLine(/lease \S+: waiting/);
  const queued = /lease (\S+): waiting/.exec(shell.lines[at]!.text)![1]!;
  shell.signal("SIGKILL");
  await shell.exited();
  const t0 = performance.now();
  // Watched as the admin: a call by bob naming the lease would count as bob being there.
  await eventually(async () => expect(await l.admin("get", "leases", "-a", "-o", "json")).toContain(`"reason": "ClientGone"`),
    { what: "the controller to give the silent client's lease back", timeout: 50_000, interval: 250 });
  const seconds = (performance.now() - t0) / 1000;
  console.log(`a SIGKILLed queued shell's lease was given back ${seconds.toFixed(1)} s after the kill (presence timeout 30 s, sweep 5 s)`);
  expect((await l.openLeases()).map((x) => x.name)).not.toContain(queued);
  await l.ok(["lease", "delete", held.name, "--client", "alice"]);
  await l.doneWith("pi-1", held.name);
  expect((await l.lease(queued, "bob")).exporter).toBeUndefined();
}, 90_000);

describe("an endpoint that accepts and never answers", () => {
  test("fails each client command within seconds, naming the endpoint", async () => {
    const port = await silentPort();
    const env = { JMP_ENDPOINT: `127.0.0.1:${port}`, JMP_TOKEN: "not-checked", JMP_CLIENT_CONFIG_HOME: "/nonexistent" };
    const runs = [
      ["exporter", "list"],
      ["shell", "-l", "board=rpi4", "--", "true"],
      ["lease", "list"],
    ];
    const t0 = performance.now();
    const results = await Promise.all(runs.map((args) => jmp(args, { env, timeoutMs: 30_000 })));
    const ms = performance.now() - t0;
    for (const [i, r] of results.entries()) {
      expect({ args: runs[i], code: r.code }).toEqual({ args: runs[i], code: 1 });
      expect(r.stderr).toContain(`cannot reach the controller at 127.0.0.1:${port}: no answer within 10 s`);
      noStackTrace(r.stderr);
    }
    expect(ms).toBeLessThan(25_000);
  }, 40_000);

  test("fails a direct-mode shell within seconds", async () => {
    const port = await silentPort();
    const r = await jmp(["shell", "--tls-grpc", `127.0.0.1:${port}`, "--tls-grpc-insecure", "--", "true"], { timeoutMs: 30_000 });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`the exporter at 127.0.0.1:${port} did not answer in time`);
    const tls = await jmp(["shell", "--tls-grpc", `127.0.0.1:${port}`, "--", "true"], { timeoutMs: 30_000 });
    expect(tls.code).toBe(1);
    expect(tls.stderr).toContain(`cannot reach the exporter at 127.0.0.1:${port}: no answer within 10 s`);
  }, 70_000);
});

describe("messages that say what to do", () => {
  test("a controller certificate that cannot be checked here is a local TLS check naming tls.ca, not the controller's answer", async () => {
    const l = await lab({ exporters: [], clients: ["alice"] });
    const file = join(l.env.JMP_CLIENT_CONFIG_HOME!, "clients", "alice.yaml");
    const doc = parse(readFileSync(file, "utf8")) as { tls: { ca: string } };
    doc.tls.ca = "";
    const noCa = l.dir.file("no-ca.yaml", stringify(doc));
    const r = await l.jmp(["exporter", "list", "--client-config", noCa]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`cannot reach the controller at ${l.endpoint}: its TLS certificate failed the check made here`);
    expect(r.stderr).toContain("tls.ca");
    expect(r.stderr).not.toContain("answered");
  }, 30_000);

  test("TLS to a plain HTTP/2 port, and plain HTTP/2 to a TLS port, each say which flag to change", async () => {
    const l = await lab({ exporters: [], clients: ["alice"] });
    const cfg = l.dir.file("local.yaml", stringify({ apiVersion: "jumpstarter.dev/v1alpha1", kind: "ExporterConfig", metadata: { namespace: "default", name: "bench" }, export: EXPORT }));
    const port = await freePort();
    const direct = l.spawn("direct exporter", ["run", "--exporter-config", cfg, "--tls-grpc-listener", `127.0.0.1:${port}`, "--tls-grpc-insecure"]);
    await eventually(() => tcpAccepts(port), { what: "the direct exporter to listen", interval: 20, signal: direct.running });
    const tlsToPlain = await l.jmp(["shell", "--tls-grpc", `127.0.0.1:${port}`, "--", "true"]);
    expect(tlsToPlain.code).toBe(1);
    expect(tlsToPlain.stderr).toContain("does not speak TLS");
    expect(tlsToPlain.stderr).toContain("--tls-grpc-insecure");
    const plainToTls = await l.jmp(["shell", "--tls-grpc", l.endpoint, "--tls-grpc-insecure", "--", "true"]);
    expect(plainToTls.code).toBe(1);
    expect(plainToTls.stderr).toContain("leave out --tls-grpc-insecure");
    for (const r of [tlsToPlain, plainToTls]) {
      expect(r.stderr).not.toMatch(/CANCEL|WRONG_VERSION_NUMBER|0x8/);
      noStackTrace(r.stderr);
    }
  }, 30_000);

  test("usage mistakes in lease options exit 2 naming the flag", async () => {
    const l = await lab({ exporters: [], clients: ["alice"] });
    const cases: [string[], string][] = [
      [["lease", "create", "-l", "board=rpi4", "--duration", "0", "--client", "alice"], "'--duration' must be longer than zero: got '0'"],
      [["shell", "-l", "board=rpi4", "--duration", "0s", "--client", "alice", "--", "true"], "'--duration' must be longer than zero"],
      [["lease", "create", "-l", "board=rpi4", "--duration", "10m", "--begin-time", "tomorrow", "--client", "alice"], "'--begin-time' must be an ISO-8601 time"],
      [["shell", "--tls-grpc", "localhost", "--", "true"], "'--tls-grpc' takes the exporter's HOST:PORT: got 'localhost'"],
    ];
    for (const [args, message] of cases) {
      const r = await l.jmp(args);
      expect({ args, code: r.code }).toEqual({ args, code: 2 });
      expect(r.stderr).toContain(message);
    }
    expect(await l.openLeases()).toEqual([]);
  }, 30_000);

  test("lease create with a selector nothing matches fails at once with the reason, and prints no name", async () => {
    const l = await lab({ exporters: ["pi-1"], clients: ["alice"] });
    const r = await l.jmp(["lease", "create", "-l", "board=nope", "--duration", "10m", "--client", "alice", "-o", "name"]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/lease \S+ is unsatisfiable \(\w+\): .*board=nope/);
    expect((await l.openLeases()).filter((x) => x.state === "Pending" || x.state === "Ready")).toEqual([]);
  }, 30_000);
});

describe("admin create", () => {
  test("an --out path that cannot be written fails before anything is registered; the same command then works", async () => {
    const l = await lab({ exporters: [], clients: [] });
    for (const [kind, out] of [["client", "/proc/nope.yaml"], ["exporter", join(l.dir.path, "missing-parent-file", "x.yaml")]] as const) {
      if (kind === "exporter") writeFileSync(join(l.dir.path, "missing-parent-file"), "a file, not a directory");
      const bad = await l.jmp(["admin", "create", kind, "zed", "--out", out, "--data-dir", l.dataDir]);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain(`--out ${out}: cannot write there`);
      noStackTrace(bad.stderr);
      const list = JSON.parse(await l.admin("get", `${kind}s`, "-o", "json")) as { name: string }[];
      expect(list.map((x) => x.name)).not.toContain("zed");
      const good = join(l.dir.path, `${kind}-zed.yaml`);
      expect((await l.jmp(["admin", "create", kind, "zed", "--out", good, "--data-dir", l.dataDir])).code).toBe(0);
      expect((parse(readFileSync(good, "utf8")) as { token: string }).token.length).toBeGreaterThan(20);
    }
  }, 30_000);

  test("client configs carry upstream's drivers section: jumpstarter_driver_* by default, --allow, --allow '', --unsafe", async () => {
    const l = await lab({ exporters: [], clients: [] });
    const write = async (name: string, ...flags: string[]) => {
      const out = join(l.dir.path, `${name}.yaml`);
      await l.admin("create", "client", name, "--out", out, ...flags);
      return (parse(readFileSync(out, "utf8")) as { drivers: unknown }).drivers;
    };
    expect(await write("c1")).toEqual({ allow: ["jumpstarter_driver_*"], unsafe: false });
    expect(await write("c2", "--allow", "jumpstarter_driver_*,acme_*")).toEqual({ allow: ["jumpstarter_driver_*", "acme_*"], unsafe: false });
    expect(await write("c3", "--allow", "")).toEqual({ allow: [], unsafe: false });
    expect(await write("c4", "--unsafe")).toEqual({ allow: [], unsafe: true });
    const both = await l.jmp(["admin", "create", "client", "c5", "--allow", "x", "--unsafe", "--data-dir", l.dataDir]);
    expect(both.code).toBe(2);
    expect(JSON.parse(await l.admin("get", "clients", "-o", "json")).map((c: { name: string }) => c.name)).not.toContain("c5");

    const made = await l.jmp(["config", "client", "create", "mine", "--endpoint", l.endpoint, "--token", "t"]);
    expect(made.code).toBe(0);
    const saved = parse(readFileSync(join(l.env.JMP_CLIENT_CONFIG_HOME!, "clients", "mine.yaml"), "utf8")) as { drivers: unknown };
    expect(saved.drivers).toEqual({ allow: ["jumpstarter_driver_*"], unsafe: false });
  }, 30_000);
});

test("a shell killed outright leaves no private directories behind once the next shell starts", async () => {
  const l = await lab({ exporters: ["pi-1"], clients: ["alice"] });
  const tmp = join(l.dir.path, "tmp");
  mkdirSync(tmp);
  l.env.TMPDIR = tmp;
  const shell = l.spawn("a shell to kill", ["shell", "-l", "board=rpi4", "--client", "alice", "--", "sleep", "30"]);
  const mine = () => ["jmp-tunnel-", "jmp-bin-"].flatMap((p) => readdirPrefixed(tmp, `${p}${shell.pid}-`));
  await eventually(() => expect(mine()).toHaveLength(2), { what: "the shell's tunnel and bin directories", interval: 20, signal: shell.running });
  const [lease] = (await l.openLeases()).filter((x) => x.client === "alice" && x.state === "Ready");
  const leaseName = lease!.name;
  shell.signal("SIGKILL");
  await shell.exited();
  const left = mine();
  expect(left.every((d) => existsSync(d))).toBe(true);
  // The lease outlives its shell (it was in use); the next shell on it sweeps up.
  expect((await l.jmp(["shell", "--lease", leaseName, "--client", "alice", "--", "true"])).code).toBe(0);
  expect(left.filter((d) => existsSync(d))).toEqual([]);
  await l.ok(["lease", "delete", leaseName, "--client", "alice"]);
}, 60_000);

function readdirPrefixed(dir: string, prefix: string): string[] {
  return readdirSync(dir).filter((n) => n.startsWith(prefix)).map((n) => join(dir, n));
}

test("a dump whose terminal closes (SIGHUP) or that is interrupted (SIGINT) leaves no .partial file; the next one lands whole", async () => {
  const dir = tempDir("jmp-dump-cut-");
  cleanups.push(() => dir.remove());
  const disk = join(dir.path, "disk.img");
  writeImage(disk, 256 * 2 ** 20);
  const config = join(dir.path, "exporter.yaml");
  writeFileSync(config, stringify({
    apiVersion: "jumpstarter.dev/v1alpha1", kind: "ExporterConfig", metadata: { namespace: "default", name: "cut" },
    export: { storage: { type: "ImageStorage", config: { path: disk } } },
  }));
  const out = join(dir.path, "out.img");
  for (const signal of ["SIGHUP", "SIGINT"] as const) {
    // As a terminal does: the signal goes to the shell and its j, both.
    const shell = Bun.spawn([JMP, "shell", "--exporter-config", config, "--", "j", "storage", "dump", out], { stdout: "ignore", stderr: "pipe", detached: true });
    await eventually(() => expect(existsSync(`${out}.partial`) && statSync(`${out}.partial`).size > 4 * 2 ** 20).toBe(true), { timeout: 30_000, interval: 2 });
    process.kill(-shell.pid, signal);
    expect(await shell.exited).not.toBe(0);
    expect(existsSync(`${out}.partial`)).toBe(false);
    expect(existsSync(out)).toBe(false);
  }
  const r = await jmp(["shell", "--exporter-config", config, "--", "j", "storage", "dump", out], { timeoutMs: 60_000 });
  expect(r.code).toBe(0);
  expect(Bun.spawnSync(["cmp", disk, out]).exitCode).toBe(0);
}, 90_000);

test("a local shell killed outright (SIGKILL) during a dump: its j says the connection closed, exits 1 and leaves no .partial", async () => {
  const dir = tempDir("jmp-dump-killed-");
  cleanups.push(() => dir.remove());
  const disk = join(dir.path, "disk.img");
  writeImage(disk, 512 * 2 ** 20);
  const config = join(dir.path, "exporter.yaml");
  writeFileSync(config, stringify({
    apiVersion: "jumpstarter.dev/v1alpha1", kind: "ExporterConfig", metadata: { namespace: "default", name: "killed" },
    export: { storage: { type: "ImageStorage", config: { path: disk } } },
  }));
  const out = join(dir.path, "out.img");
  const [err, code] = [join(dir.path, "j.err"), join(dir.path, "j.code")];
  // The shell's exporter dies with it; its j, a grandchild, lives on and must notice.
  const shell = Bun.spawn([JMP, "shell", "--exporter-config", config, "--", "sh", "-c", `j storage dump '${out}' 2>'${err}'; echo $? >'${code}'`], {
    stdout: "ignore", stderr: "ignore",
  });
  await eventually(() => expect(existsSync(`${out}.partial`) && statSync(`${out}.partial`).size > 4 * 2 ** 20).toBe(true), { timeout: 30_000, interval: 2 });
  shell.kill("SIGKILL");
  await eventually(() => expect(existsSync(code) && readFileSync(code, "utf8").trim() !== "").toBe(true), { timeout: 15_000, what: "j to exit" });
  expect(readFileSync(code, "utf8").trim()).toBe("1");
  const said = readFileSync(err, "utf8");
  // The transfer's own error, not the DUT switch's after it (which said "dut: connect ECONNREFUSED …").
  expect(said).toContain("the connection to the exporter closed before");
  expect(said).not.toContain("dut:");
  noStackTrace(said);
  expect(existsSync(`${out}.partial`)).toBe(false);
  expect(existsSync(out)).toBe(false);
}, 60_000);

test("a j forward left in the background ends with its shell: it says why, exits 1 and frees its port", async () => {
  const dir = tempDir("jmp-forward-orphan-");
  cleanups.push(() => dir.remove());
  const config = join(dir.path, "exporter.yaml");
  writeFileSync(config, stringify({
    apiVersion: "jumpstarter.dev/v1alpha1", kind: "ExporterConfig", metadata: { namespace: "default", name: "orphan" },
    export: { echo: { type: "jumpstarter_driver_network.driver.EchoNetwork" } },
  }));
  const [out, err, code] = [join(dir.path, "j.out"), join(dir.path, "j.err"), join(dir.path, "j.code")];
  // The shell's command starts the forward in the background and ends: the session goes with it.
  const r = await jmp(["shell", "--exporter-config", config, "--", "sh", "-c",
    `(j echo forward-tcp >'${out}' 2>'${err}'; echo $? >'${code}') & for i in $(seq 100); do [ -s '${out}' ] && break; sleep 0.05; done`]);
  expect(r.code).toBe(0);
  const address = readFileSync(out, "utf8").trim();
  expect(address).toMatch(/^127\.0\.0\.1:\d+$/);
  await eventually(() => expect(existsSync(code) && readFileSync(code, "utf8").trim() !== "").toBe(true), { timeout: 10_000, what: "the forward to exit" });
  expect(readFileSync(code, "utf8").trim()).toBe("1");
  const said = readFileSync(err, "utf8");
  expect(said).toBe(`Error: the connection to the exporter closed: stopped forwarding ${address}\n`);
  // Its port is closed, not left leading nowhere.
  await expect(tcpAccepts(Number(address.split(":")[1]))).rejects.toThrow("ECONNREFUSED");
}, 30_000);
