/**
 * SNMPServer: one outlet of a PDU switched over SNMP, as upstream's
 * jumpstarter_driver_snmp (same type path, config keys, client label): `on` and
 * `off` SET the INTEGER at `<oid>.<plug>` to 1 and 0 (Raritan's switchingOperation
 * by default), over SNMPv3 with upstream's auth/priv keys.
 * Beyond upstream: SNMPv2c (`community` instead of `user`); stronger v3 protocols
 * (SHA-224…512, AES-256); `on_value`/`off_value` for PDUs with other encodings (APC:
 * 1 and 2); `read` GETs the outlet's voltage, current and power where their OIDs are
 * configured; every request bounded by `timeout`; errors that name the PDU, the
 * outlet and the OID, and what to check.
 */
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import {
  config, type ConfigOf, DeadlineExceededError, DriverError, Driver, exported, NotImplementedDriverError, UnavailableError,
} from "@jumpstarter/driver";
import type { Session, Varbind } from "net-snmp";
import type { PowerReading } from "../power/driver.ts";
import { SNMP_CLIENT } from "./clients.ts";

export { SNMP_CLIENT };

/** Raritan PDU2-MIB switchingOperation of pdu 1, upstream's default. */
const RARITAN_SWITCHING = "1.3.6.1.4.1.13742.6.4.1.2.1.2.1";

export type SnmpReading = PowerReading & { power?: number };

function oidField(description: string): config.Field<string> {
  const expected = "a numeric OID such as 1.3.6.1.4.1.13742.6.4.1.2.1.2.1";
  return {
    expected,
    optional: false,
    description,
    parse(value, keyPath) {
      const text = typeof value === "string" ? value.trim().replace(/^\./, "") : undefined;
      const arcs = text && /^\d+(\.\d+)+$/.test(text) ? text.split(".").map(Number) : undefined;
      // BER can only encode a first arc of 0-2, and a second arc below 40 under 0 and 1.
      if (!arcs || arcs[0]! > 2 || (arcs[0]! < 2 && arcs[1]! >= 40) || arcs.some((a) => a > 0xffffffff)) {
        throw new config.SchemaError(keyPath, `expected ${expected}, got ${JSON.stringify(value)}`);
      }
      return text!;
    },
  };
}

const AUTH = ["NONE", "MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512"] as const;
const PRIV = ["NONE", "DES", "AES", "AES256B", "AES256R"] as const;

const shape = {
  host: config.string({ nonEmpty: true, description: "the PDU's host name or address" }),
  user: config.optional(config.string({ nonEmpty: true, description: "SNMPv3 user (as upstream)" })),
  community: config.optional(config.string({ nonEmpty: true, description: "SNMPv2c community, instead of user" })),
  port: config.withDefault(config.number({ integer: true, min: 1, max: 65535, description: "the PDU's SNMP port" }), 161),
  plug: config.number({ integer: true, min: 0, max: 0xffffffff, description: "outlet number, appended to oid" }),
  oid: config.withDefault(oidField("the outlet switch table: <oid>.<plug> is SET to switch (default: Raritan PDU2 switchingOperation)"), RARITAN_SWITCHING),
  auth_protocol: config.withDefault(config.oneOf(AUTH, { description: "SNMPv3 authentication" }), "NONE"),
  auth_key: config.optional(config.string({ description: "SNMPv3 authentication pass phrase (8 characters or more)" })),
  priv_protocol: config.withDefault(config.oneOf(PRIV, { description: "SNMPv3 privacy (encryption); needs authentication" }), "NONE"),
  priv_key: config.optional(config.string({ description: "SNMPv3 privacy pass phrase (8 characters or more)" })),
  timeout: config.withDefault(config.number({ min: 0.001, description: "seconds to wait for the PDU's answer" }), 5),
  on_value: config.withDefault(config.number({ integer: true, description: "the INTEGER that switches the outlet on (APC: 1)" }), 1),
  off_value: config.withDefault(config.number({ integer: true, description: "the INTEGER that switches the outlet off (APC: 2)" }), 0),
  voltage_oid: config.optional(oidField("read: full OID of the outlet's voltage")),
  current_oid: config.optional(oidField("read: full OID of the outlet's current")),
  power_oid: config.optional(oidField("read: full OID of the outlet's active power")),
  voltage_scale: config.withDefault(config.number({ description: "read: volts per unit of voltage_oid" }), 1),
  current_scale: config.withDefault(config.number({ description: "read: amperes per unit of current_oid (Raritan, in mA: 0.001; APC, in tenths: 0.1)" }), 1),
  power_scale: config.withDefault(config.number({ description: "read: watts per unit of power_oid" }), 1),
};

type Config = ConfigOf<typeof shape>;

/** Not a PowerInterface: upstream's SNMPServer is a plain Driver with its own client path (a PowerClient subclass). */
export class SNMPServer extends Driver<Config> {
  static override readonly client = SNMP_CLIENT;
  static override readonly configShape = shape;
  static override readonly driverType = "power";
  static override readonly summary = "one outlet of a PDU switched over SNMP (v2c or v3)";
  static override readonly help = { on: "Power on", off: "Power off", read: "Read power measurements" };

  private readonly outletOid: string;
  private readonly pdu: string;

  constructor(cfg: Config) {
    super(cfg);
    if (cfg.user === undefined && cfg.community === undefined) throw new Error("user: missing; give user (SNMPv3, as upstream) or community (SNMPv2c)");
    if (cfg.user !== undefined && cfg.community !== undefined) throw new Error("community: give user (SNMPv3) or community (SNMPv2c), not both");
    if (cfg.community !== undefined) {
      for (const key of ["auth_protocol", "priv_protocol"] as const) {
        if (cfg[key] !== "NONE") throw new Error(`${key}: SNMPv2c (community) has no ${key === "auth_protocol" ? "authentication" : "privacy"}; use user for SNMPv3`);
      }
    }
    for (const [protocol, key] of [["auth_protocol", "auth_key"], ["priv_protocol", "priv_key"]] as const) {
      const k = cfg[key];
      if (cfg[protocol] === "NONE") {
        if (k) throw new Error(`${key}: given, but ${protocol} is NONE; set ${protocol} too`);
      } else if (!k) {
        throw new Error(`${key}: missing; ${protocol} ${cfg[protocol]} needs it`);
      } else if (k.length < 8) {
        throw new Error(`${key}: SNMPv3 pass phrases have 8 characters or more, got ${k.length}`);
      }
    }
    if (cfg.priv_protocol !== "NONE" && cfg.auth_protocol === "NONE") throw new Error("priv_protocol: privacy needs authentication: set auth_protocol and auth_key too");
    this.outletOid = `${cfg.oid}.${cfg.plug}`;
    this.pdu = `the PDU at udp://${cfg.host.includes(":") ? `[${cfg.host}]` : cfg.host}:${cfg.port}`;
  }

  @exported
  async on(): Promise<void> {
    this.log.info(`outlet ${this.config.plug} on (SET ${this.outletOid} = ${this.config.on_value})`);
    await this.switchTo("on", this.config.on_value);
  }

  @exported
  async off(): Promise<void> {
    this.log.info(`outlet ${this.config.plug} off (SET ${this.outletOid} = ${this.config.off_value})`);
    await this.switchTo("off", this.config.off_value);
  }

  /** The outlet's readings, from the OIDs configured for them; 0 for one not configured, as upstream's readings do. */
  @exported
  async *read(): AsyncGenerator<SnmpReading> {
    const c = this.config;
    const wanted = { voltage: c.voltage_oid, current: c.current_oid, power: c.power_oid };
    const oids = Object.values(wanted).filter((o): o is string => Boolean(o));
    if (!oids.length) {
      throw new NotImplementedDriverError(`outlet ${c.plug} of ${this.pdu} has nothing to read: set voltage_oid, current_oid or power_oid (the PDU's sensor OIDs for this outlet)`);
    }
    const varbinds = await this.request("read", (s, done) => s.get(oids, done));
    const value = (oid: string | undefined, scale: number): number | undefined => {
      if (!oid) return undefined;
      const vb = varbinds.find((v) => v.oid === oid);
      const n = typeof vb?.value === "number" ? vb.value : typeof vb?.value === "bigint" ? Number(vb.value) : NaN;
      if (!Number.isFinite(n)) throw new DriverError(`${this.pdu} answered ${oid} with no number: ${JSON.stringify(String(vb?.value))}`);
      return n * scale;
    };
    const reading: SnmpReading = { voltage: value(c.voltage_oid, c.voltage_scale) ?? 0, current: value(c.current_oid, c.current_scale) ?? 0 };
    const power = value(c.power_oid, c.power_scale);
    if (power !== undefined) reading.power = power;
    yield reading;
  }

  private async switchTo(state: string, value: number): Promise<void> {
    const snmp = await import("net-snmp");
    await this.request(`switch outlet ${this.config.plug} ${state}`, (s, done) =>
      s.set([{ oid: this.outletOid, type: snmp.ObjectType.Integer!, value }], done),
    );
  }

  /** One request in a session of its own (as upstream: nothing to keep between calls), bounded by `timeout`. */
  private async request(what: string, send: (s: Session, done: (e: Error | null, vbs: Varbind[]) => void) => void): Promise<Varbind[]> {
    const snmp = await import("net-snmp");
    const c = this.config;
    const ms = Math.max(1, Math.round(c.timeout * 1000));
    const address = await this.resolve(ms);
    // Two tries within the timeout: UDP may drop one datagram.
    const options = { port: c.port, retries: 1, timeout: Math.max(1, Math.floor(ms / 2)), transport: isIP(address) === 6 ? "udp6" as const : "udp4" as const };
    const session = c.community !== undefined
      ? snmp.createSession(address, c.community, { ...options, version: snmp.Version2c })
      : snmp.createV3Session(address, this.user(snmp), { ...options, version: snmp.Version3 });
    try {
      const varbinds = await new Promise<Varbind[]>((resolve, reject) => {
        const timer = setTimeout(() => reject(this.late(what)), ms + 500);
        session.on("error", (e) => {
          clearTimeout(timer);
          reject(e);
        });
        send(session, (e, vbs) => {
          clearTimeout(timer);
          if (e) reject(e);
          else resolve(vbs);
        });
      });
      const bad = varbinds.find((vb) => snmp.isVarbindError(vb));
      if (bad) throw new DriverError(`${this.pdu} has no ${bad.oid} (${snmp.varbindError(bad).split(":")[0]}): ${this.checkOid()}`);
      return varbinds;
    } catch (e) {
      throw this.explain(e, what);
    } finally {
      session.close();
    }
  }

  private user(snmp: typeof import("net-snmp")): import("net-snmp").User {
    const c = this.config;
    const level = c.auth_protocol === "NONE" ? snmp.SecurityLevel.noAuthNoPriv : c.priv_protocol === "NONE" ? snmp.SecurityLevel.authNoPriv : snmp.SecurityLevel.authPriv;
    return {
      name: c.user!,
      level,
      ...(c.auth_protocol !== "NONE" ? { authProtocol: snmp.AuthProtocols[c.auth_protocol.toLowerCase()], authKey: c.auth_key } : {}),
      ...(c.priv_protocol !== "NONE" ? { privProtocol: snmp.PrivProtocols[c.priv_protocol.toLowerCase()], privKey: c.priv_key } : {}),
    };
  }

  private async resolve(ms: number): Promise<string> {
    const host = this.config.host;
    if (isIP(host)) return host;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new DeadlineExceededError(`looking up ${host} took more than ${this.config.timeout} s`)), ms)));
      return (await Promise.race([lookup(host), late])).address;
    } catch (e) {
      if (e instanceof DriverError) throw e;
      throw new UnavailableError(`cannot reach ${this.pdu}: ${(e as NodeJS.ErrnoException).code === "ENOTFOUND" ? "host not found" : (e as Error).message}`);
    } finally {
      clearTimeout(timer);
    }
  }

  private credentials(): string {
    return this.config.community !== undefined ? "the community" : `user ${this.config.user}, auth_protocol/auth_key and priv_protocol/priv_key`;
  }

  private checkOid(): string {
    return `check oid and plug (outlet ${this.config.plug} is ${this.outletOid})`;
  }

  private late(what: string): DeadlineExceededError {
    return new DeadlineExceededError(
      `${this.pdu} did not answer (${what}) within ${this.config.timeout} s: check host and port, and ${this.credentials()} (an SNMP agent ignores requests it cannot authenticate)`,
    );
  }

  private explain(e: unknown, what: string): Error {
    if (e instanceof DriverError) return e;
    const err = e as Error & { status?: number; code?: string };
    switch (err.name) {
      case "RequestTimedOutError":
        return this.late(what);
      case "RequestFailedError": {
        // The agent answered with an error status (NotWritable, WrongType, WrongValue, ...), which net-snmp follows with the OID we show anyway.
        const status = err.message.replace(/:\s*[\d.]+$/, "");
        return new DriverError(`${this.pdu} refused to ${what} (${this.outletOid}): ${status}; ${this.checkOid()}${/value/i.test(status) ? ", and on_value/off_value" : ""}`);
      }
      case "ResponseInvalidError":
        return new DriverError(`${this.pdu} refused ${this.config.user !== undefined ? `SNMPv3 user ${this.config.user}` : "the request"}: ${err.message}; check ${this.credentials()}`);
    }
    if (err.code) return new UnavailableError(`cannot reach ${this.pdu}: ${err.message}`);
    return new DriverError(`${what} at ${this.pdu} failed: ${err.message}`);
  }
}
