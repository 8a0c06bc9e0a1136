/**
 * `jmp controller run` on a data dir it cannot use (issue 11, defects 5 and 7): a
 * read-only dir or database, a file that is not a database, a zero-byte database
 * beside keys, a newer schema, a port in use. Each must end the start with one line
 * naming the path (or address) and what to do, exit 2 (1 for the port), say nothing
 * about listening, and change no file of the data dir — not even the server
 * certificate, which a different --advertise would otherwise re-issue.
 */
import { afterEach, beforeEach, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { createHash } from "node:crypto";
import { chmodSync, chownSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { eventually } from "../src/api/eventually.ts";
import { ADMIN_CONFIG_FILE } from "../src/common/client-config.ts";
import { freePort, JMP, jmp, type Result, tcpAccepts, tempDir } from "./helpers.ts";
import { Proc } from "./distributed/lab.ts";

let dir: ReturnType<typeof tempDir>;
let dataDir: string;
let port: number;

beforeEach(async () => {
  dir = tempDir("jmp-start-");
  // So that an unprivileged controller can reach the data dir in it.
  chmodSync(dir.path, 0o711);
  dataDir = join(dir.path, "data");
  port = await freePort();
});

afterEach(() => dir.remove());

/** As root, permissions do not stop writes: run the controller as nobody then. */
const UNPRIVILEGED = process.getuid?.() === 0 ? ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] : [];

async function controller(opts: { advertise?: string; unprivileged?: boolean } = {}): Promise<Result> {
  const args = ["controller", "run", "--data-dir", dataDir, "--listen", `127.0.0.1:${port}`, "--advertise", opts.advertise ?? `127.0.0.1:${port}`];
  if (!opts.unprivileged || UNPRIVILEGED.length === 0) return jmp(args, { timeoutMs: 15_000 });
  // helpers.jmp runs dist/jmp itself; through setpriv it is an argument.
  const proc = Bun.spawn([...UNPRIVILEGED, JMP, ...args], { env: { ...process.env, NO_COLOR: "1" }, stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => proc.kill("SIGKILL"), 15_000);
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  return { code, stdout, stderr };
}

/** Until the controller accepts connections on its port and has written admin.yaml (a first start does so just after). */
async function listening(p: Proc): Promise<void> {
  await eventually(() => tcpAccepts(port), { what: `the controller to listen on ${port}`, interval: 20, timeout: 15_000, signal: p.running });
  await eventually(() => statSync(join(dataDir, ADMIN_CONFIG_FILE)), { what: `the controller to write ${ADMIN_CONFIG_FILE}`, interval: 20, signal: p.running });
}

/** A first start that makes keys, certificates and the database, then a clean stop. */
async function firstStart(): Promise<void> {
  const p = new Proc("the controller", ["controller", "run", "--data-dir", dataDir, "--listen", `127.0.0.1:${port}`, "--advertise", `127.0.0.1:${port}`], {});
  await listening(p);
  await p.stop();
}

/** Every file of the data dir with its content hash and modification time. */
function snapshot(): Record<string, string> {
  return Object.fromEntries(readdirSync(dataDir).sort().map((f) => {
    const path = join(dataDir, f);
    return [f, `${createHash("sha256").update(readFileSync(path)).digest("hex")} ${statSync(path).mtimeMs}`];
  }));
}

/** The start failed with exactly one line, this code, and no word of listening; the data dir is as it was. */
async function refused(before: Record<string, string>, r: Result, code: number, line: string | RegExp): Promise<void> {
  const lines = r.stderr.trim().split("\n");
  expect({ code: r.code, lines: lines.length, stdout: r.stdout }).toEqual({ code, lines: 1, stdout: "" });
  if (typeof line === "string") expect(lines[0]).toBe(line);
  else expect(lines[0]).toMatch(line);
  expect(r.stderr).not.toContain("listening");
  expect(snapshot()).toEqual(before);
}

const db = () => join(dataDir, "jumpstarter.db");
const restore = "restore it from a backup, or move it away to start an empty lab";

test("a read-only data dir is refused before anything happens: its path, what to do, exit 2", async () => {
  await firstStart();
  if (UNPRIVILEGED.length) for (const f of [dataDir, ...readdirSync(dataDir).map((f) => join(dataDir, f))]) chownSync(f, 65534, 65534);
  chmodSync(dataDir, 0o500);
  try {
    const before = snapshot();
    await refused(before, await controller({ unprivileged: true, advertise: "elsewhere:1" }), 2,
      `Error: the data dir ${dataDir} is not writable: the controller keeps its database and keys there; ` +
        "make it writable for the user running the controller (chown/chmod, or mount it read-write), or choose another --data-dir");
  } finally {
    chmodSync(dataDir, 0o700);
  }
}, 60_000);

test("a read-only database file is refused the same way", async () => {
  await firstStart();
  if (UNPRIVILEGED.length) for (const f of [dataDir, ...readdirSync(dataDir).map((f) => join(dataDir, f))]) chownSync(f, 65534, 65534);
  chmodSync(db(), 0o400);
  const before = snapshot();
  await refused(before, await controller({ unprivileged: true }), 2,
    `Error: ${db()} is not writable; make it writable for the user running the controller (chown/chmod, or mount it read-write), or choose another --data-dir`);
}, 60_000);

test("a file that is not a database, and one that only starts like one, are refused with their path", async () => {
  await firstStart();
  writeFileSync(db(), "these are not the bytes of a database\n".repeat(100));
  const before = snapshot();
  await refused(before, await controller({ advertise: "elsewhere:1" }), 2, `Error: ${db()} is not a SQLite database: ${restore}`);

  writeFileSync(db(), Buffer.concat([Buffer.from("SQLite format 3\0"), Buffer.alloc(4080, 0xa5)]));
  const damaged = snapshot();
  await refused(damaged, await controller({ advertise: "elsewhere:1" }), 2,
    `Error: ${db()} is damaged or not a SQLite database (file is not a database): ${restore}`);
}, 60_000);

test("a zero-byte database beside keys of an earlier start is a lost database, not an empty lab", async () => {
  await firstStart();
  writeFileSync(db(), "");
  const before = snapshot();
  await refused(before, await controller(), 2,
    `Error: ${db()} is empty, but ${dataDir} holds keys from an earlier start: its clients, exporters and leases are gone. ` +
      "Restore jumpstarter.db from a backup, or delete it to start an empty lab with the same keys");
}, 60_000);

test("a database written by a newer jmp is refused, naming both versions", async () => {
  await firstStart();
  const raw = new Database(db());
  raw.query("INSERT INTO schema_version (version, applied_at) VALUES (99, 0)").run();
  raw.close();
  const before = snapshot();
  await refused(before, await controller(), 2,
    new RegExp(`^Error: ${db()} has schema version 99, newer than this jmp understands \\(\\d+\\): run the jmp that wrote it \\(or a newer one\\), or restore a backup made before the upgrade$`));
}, 60_000);

test("a port in use fails the start (exit 1) before the server certificate is re-issued for a new --advertise", async () => {
  await firstStart();
  const squatter: Server = createServer();
  await new Promise<void>((r) => squatter.listen(port, "127.0.0.1", r));
  try {
    const before = snapshot();
    await refused(before, await controller({ advertise: "elsewhere:1" }), 1,
      `Error: cannot listen on 127.0.0.1:${port}: the address is in use (another controller?); stop it or choose another --listen`);
  } finally {
    squatter.close();
  }
  // Free again, the same start goes ahead and only then re-issues the certificate.
  const p = new Proc("the controller", ["controller", "run", "--data-dir", dataDir, "--listen", `127.0.0.1:${port}`, "--advertise", "elsewhere:1"], {});
  await listening(p);
  await p.stop();
  expect(p.output).toMatch(/server\.pem \(re-issued for [^)]*elsewhere/);
}, 60_000);
