/**
 * Debian's snmpd for tests, as a PDU: its own config in a temporary folder (not the
 * system's), on a free UDP port of 127.0.0.1, with a community for SNMPv2c and
 * SNMPv3 users at each security level, and the outlets simulated behind it by
 * pdu-outlets.py through pass_persist (Raritan's PDU2-MIB, pdu 1).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createSocket } from "node:dgram";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { eventually } from "../../src/common/eventually.ts";

/** Raritan PDU2-MIB switchingOperation for pdu 1: upstream's default `oid`. */
export const RARITAN_SWITCHING = "1.3.6.1.4.1.13742.6.4.1.2.1.2.1";
/** measurementsOutletSensorValue for pdu 1: then outlet, then sensor (1 current in mA, 4 voltage). */
export const RARITAN_SENSOR = "1.3.6.1.4.1.13742.6.5.4.3.1.4.1";

export const USERS = {
  /** authPriv with upstream's SHA and AES */
  priv: { user: "labuser", auth_protocol: "SHA", auth_key: "auth-pass-1", priv_protocol: "AES", priv_key: "priv-pass-1" },
  /** authNoPriv with MD5 */
  auth: { user: "authonly", auth_protocol: "MD5", auth_key: "auth-pass-2" },
  /** noAuthNoPriv */
  none: { user: "plain" },
} as const;
export const COMMUNITY = "lab-rw";

export interface PduSim {
  port: number;
  /** Outlet states by number, as the simulated PDU has them now. */
  outlets(): Record<string, "on" | "off">;
  /** Every SET of switchingOperation the PDU took: [outlet, value]. */
  sets(): [number, number][];
  stop(): Promise<void>;
  close(): Promise<void>;
}

export const snmpdMissing = Bun.which("snmpd") || Bun.which("/usr/sbin/snmpd") ? undefined : "snmpd is not installed (apt-get install -y snmpd)";

export async function startPdu(opts: { outlets?: number } = {}): Promise<PduSim> {
  const dir = mkdtempSync(join(tmpdir(), "jmp-snmpd-"));
  const persist = join(dir, "persist");
  mkdirSync(persist);
  const state = join(dir, "outlets.json");
  const port = await freeUdpPort();
  const python = Bun.which("python3") ?? "/usr/bin/python3";
  const conf = join(dir, "snmpd.conf");
  const p = USERS.priv;
  const a = USERS.auth;
  writeFileSync(conf, [
    `agentAddress udp:127.0.0.1:${port}`,
    `rwcommunity ${COMMUNITY} 127.0.0.1`,
    `createUser ${p.user} ${p.auth_protocol} "${p.auth_key}" ${p.priv_protocol} "${p.priv_key}"`,
    `createUser ${a.user} ${a.auth_protocol} "${a.auth_key}"`,
    `createUser ${USERS.none.user}`,
    `rwuser ${p.user} priv`,
    `rwuser ${a.user} auth`,
    `rwuser ${USERS.none.user} noauth`,
    `pass_persist .1.3.6.1.4.1.13742.6 ${python} ${join(import.meta.dir, "pdu-outlets.py")} ${state} ${opts.outlets ?? 8}`,
    "",
  ].join("\n"));
  const exe = Bun.which("snmpd") ?? "/usr/sbin/snmpd";
  // -C: only our config; -f: stay in the foreground; the persistent dir keeps the users' keys out of /var/lib/snmp.
  const proc = Bun.spawn([exe, "-f", "-C", "-c", conf, "-Le", "-M", dir, "-m", ""], {
    stdout: "ignore",
    stderr: "pipe",
    env: { ...process.env, SNMP_PERSISTENT_DIR: persist },
  });
  let stderr = "";
  void (async () => {
    for await (const chunk of proc.stderr as ReadableStream<Uint8Array>) stderr += new TextDecoder().decode(chunk);
  })();
  const died = new AbortController();
  void proc.exited.then((code) => died.abort(new Error(`snmpd exited with ${code}: ${stderr}`)));
  const read = () => JSON.parse(readFileSync(state, "utf8")) as { outlets: Record<string, "on" | "off">; sets: [number, number][] };
  // The state file appears once pass_persist has started, which snmpd does at its first request: ask until answered.
  await eventually(() => probe(port), { what: `snmpd to answer on udp 127.0.0.1:${port}`, signal: died.signal, interval: 50 });
  const stop = async () => {
    if (proc.exitCode !== null) return;
    proc.kill("SIGTERM");
    await proc.exited;
  };
  return {
    port,
    outlets: () => read().outlets,
    sets: () => read().sets,
    stop,
    close: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** One SNMPv2c GET of an outlet's state through the Debian tools, if present; else any UDP answer. */
async function probe(port: number): Promise<void> {
  const snmpget = Bun.which("snmpget");
  if (snmpget) {
    const got = Bun.spawn([snmpget, "-v2c", "-c", COMMUNITY, "-t", "0.3", "-r", "0", "-m", "", "-On", `127.0.0.1:${port}`, `${RARITAN_SWITCHING}.1`], { stdout: "pipe", stderr: "pipe" });
    const out = await new Response(got.stdout).text();
    if ((await got.exited) !== 0 || !out.includes("INTEGER")) throw new Error(`snmpget: ${out.trim() || "no answer"}`);
    return;
  }
  throw new Error("snmpget is missing (apt-get install -y snmp)");
}

async function freeUdpPort(): Promise<number> {
  const s = createSocket("udp4");
  await new Promise<void>((r) => s.bind(0, "127.0.0.1", r));
  const { port } = s.address();
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}
