/**
 * TasmotaPower: a Tasmota smart plug or relay over MQTT, as upstream's
 * jumpstarter_driver_tasmota (same type path, config keys, client label): `on` and
 * `off` publish POWER ON/OFF to `cmnd_topic` and wait until the device
 * reports that state; as upstream, the plug is switched off when the session ends
 * (here: when the session used it).
 * Beyond upstream: `topic` as a shorthand for both topics; the state is also taken
 * from `stat/<topic>/RESULT` and `tele/<topic>/STATE`, and only from reports that
 * arrive after the command (a stale ON never answers a new ON); `read` asks for
 * STATUS 10 and reports the energy meter's voltage, current and power; a `timeout`
 * on everything (default 10 s); a broker that goes away is reconnected to; errors
 * name the broker, the topic and the device's last will (Online/Offline).
 */
import { existsSync, readFileSync } from "node:fs";
import {
  callSignal, config, type ConfigOf, DeadlineExceededError, DriverError, NotImplementedDriverError, UnavailableError,
} from "@jumpstarter/driver";
import type { IClientOptions, MqttClient } from "mqtt";
import { PowerInterface, type PowerReading } from "../power/driver.ts";

export type TasmotaReading = PowerReading & { power?: number };

function topicName(description: string): config.Field<string> {
  const expected = "an MQTT topic name (no + or # wildcards)";
  return {
    expected,
    optional: false,
    description,
    parse(value, keyPath) {
      if (typeof value !== "string" || value === "" || /[+#\u0000]/.test(value) || value.startsWith("/") || value.endsWith("/")) {
        throw new config.SchemaError(keyPath, `expected ${expected} such as ${keyPath.endsWith("topic") && !keyPath.endsWith("_topic") ? "tasmota_6990F2" : "cmnd/tasmota_6990F2/POWER"}, got ${JSON.stringify(value)}`);
      }
      return value;
    },
  };
}

const shape = {
  host: config.string({ nonEmpty: true, description: "the MQTT broker's host name or address (with transport unix: its socket path)" }),
  port: config.withDefault(config.number({ integer: true, min: 1, max: 65535, description: "the broker's port" }), 1883),
  tls: config.withDefault(config.boolean({ description: "connect with TLS (as upstream, on by default)" }), true),
  ca: config.optional(config.string({ nonEmpty: true, description: "PEM file of the CA that signed the broker's certificate (default: the system's CAs)" })),
  client_id: config.optional(config.string({ nonEmpty: true, description: "MQTT client identifier (default: a random one)" })),
  transport: config.withDefault(config.oneOf(["tcp", "websockets", "unix"], { description: "how to reach the broker" }), "tcp"),
  timeout: config.withDefault(config.number({ min: 0.001, description: "seconds to wait for the broker and for the device's answer" }), 10),
  username: config.optional(config.string({ description: "MQTT user name" })),
  password: config.optional(config.string({ description: "MQTT password" })),
  cmnd_topic: config.optional(topicName("the topic commands are published to, e.g. cmnd/tasmota_6990F2/POWER")),
  stat_topic: config.optional(topicName("the topic the device reports its state on, e.g. stat/tasmota_6990F2/POWER")),
  topic: config.optional(topicName("the device's Tasmota topic, e.g. tasmota_6990F2: sets cmnd/<topic>/POWER and stat/<topic>/POWER")),
};

type Config = ConfigOf<typeof shape>;
type State = "ON" | "OFF";

/** Topics of one relay of one device, from the two upstream configures. */
interface Topics {
  cmnd: string;
  stat: string;
  /** The key of the relay's state in JSON reports: POWER, POWER2, ... */
  key: string;
  /** 1 for POWER and POWER1, n for POWERn: its index in per-channel energy readings. */
  channel: number;
  result: string;
  status: string;
  status10: string;
  teleState?: string;
  lwt?: string;
}

function topicsOf(cmnd: string, stat: string): Topics {
  const base = (t: string) => t.slice(0, t.lastIndexOf("/") + 1);
  const key = stat.slice(stat.lastIndexOf("/") + 1);
  const statBase = base(stat);
  const segments = statBase.split("/");
  const prefix = segments.indexOf("stat");
  const teleBase = prefix >= 0 ? segments.map((s, i) => (i === prefix ? "tele" : s)).join("/") : undefined;
  return {
    cmnd,
    stat,
    key,
    channel: Number(/^POWER(\d+)$/i.exec(key)?.[1] ?? 1),
    result: `${statBase}RESULT`,
    status: `${base(cmnd)}STATUS`,
    status10: `${statBase}STATUS10`,
    teleState: teleBase && `${teleBase}STATE`,
    lwt: teleBase && `${teleBase}LWT`,
  };
}

type Listener = (topic: string, payload: string) => void;

export class TasmotaPower extends PowerInterface<Config> {
  static override readonly configShape = shape;
  static override readonly summary = "a Tasmota plug or relay over MQTT (POWER ON/OFF, energy readings from STATUS 10)";

  private readonly topics: Topics;
  private readonly broker: string;
  private readonly ca?: Buffer;
  private mq?: MqttClient;
  private connecting?: Promise<MqttClient>;
  private readonly listeners = new Set<Listener>();
  private lastError?: string;
  private lastWill?: string;
  private used = false;
  /** Connected and subscribed: a command sent now can be answered. */
  private ready = false;
  private readonly readyWaiters = new Set<() => void>();

  constructor(cfg: Config) {
    super(cfg);
    if (cfg.topic !== undefined && (cfg.cmnd_topic !== undefined || cfg.stat_topic !== undefined)) {
      throw new Error(`topic: give topic, or cmnd_topic and stat_topic, not both`);
    }
    if (cfg.topic !== undefined) {
      this.topics = topicsOf(`cmnd/${cfg.topic}/POWER`, `stat/${cfg.topic}/POWER`);
    } else {
      for (const key of ["cmnd_topic", "stat_topic"] as const) {
        if (cfg[key] === undefined) {
          throw new Error(`${key}: missing; give cmnd_topic and stat_topic (e.g. cmnd/tasmota_6990F2/POWER and stat/tasmota_6990F2/POWER), or topic (e.g. tasmota_6990F2)`);
        }
      }
      this.topics = topicsOf(cfg.cmnd_topic!, cfg.stat_topic!);
    }
    if (cfg.ca !== undefined) {
      if (!cfg.tls) throw new Error("ca: set only with tls: true");
      if (!existsSync(cfg.ca)) throw new Error(`ca: no such file: ${cfg.ca}`);
      this.ca = readFileSync(cfg.ca);
    }
    const scheme = cfg.transport === "websockets" ? (cfg.tls ? "wss" : "ws") : cfg.tls ? "mqtts" : "mqtt";
    this.broker = cfg.transport === "unix" ? `${scheme}+unix://${cfg.host}` : `${scheme}://${cfg.host.includes(":") ? `[${cfg.host}]` : cfg.host}:${cfg.port}${cfg.transport === "websockets" ? "/mqtt" : ""}`;
  }

  override async on(): Promise<void> {
    await this.switchTo("ON");
  }

  override async off(): Promise<void> {
    await this.switchTo("OFF");
  }

  /** The energy meter's reading (STATUS 10), for plugs that have one. */
  override async *read(): AsyncGenerator<TasmotaReading> {
    const t = this.topics;
    const answer = await this.command(t.status, "10", "STATUS 10", (topic, payload) => (topic === t.status10 ? payload : undefined));
    let energy: Record<string, unknown> | undefined;
    try {
      energy = (JSON.parse(answer) as { StatusSNS?: { ENERGY?: Record<string, unknown> } }).StatusSNS?.ENERGY;
    } catch {
      throw new DriverError(`the Tasmota device answered STATUS 10 on ${t.status10} with no JSON: ${answer.slice(0, 200)}`);
    }
    if (!energy) throw new NotImplementedDriverError(`the Tasmota device on ${t.cmnd} has no energy meter (its STATUS 10 answer on ${t.status10} has no ENERGY)`);
    const value = (name: string): number | undefined => {
      const v = energy[name];
      const n = Array.isArray(v) ? v[t.channel - 1] : v;
      return typeof n === "number" && Number.isFinite(n) ? n : undefined;
    };
    const reading: TasmotaReading = { voltage: value("Voltage") ?? 0, current: value("Current") ?? 0 };
    const power = value("Power");
    if (power !== undefined) reading.power = power;
    yield reading;
  }

  override async close(): Promise<void> {
    try {
      // upstream switches the plug off when the session ends; a session that never touched it leaves it alone.
      if (this.used) await this.switchTo("OFF");
    } catch (e) {
      this.log.warn(`could not switch ${this.topics.cmnd} off at the end of the session: ${(e as Error).message}`);
    } finally {
      await this.connecting?.catch(() => {});
      await this.mq?.endAsync(true).catch(() => {});
      this.mq = undefined;
    }
  }

  private async switchTo(state: State): Promise<void> {
    this.log.info(`power ${state.toLowerCase()}: ${state} to ${this.topics.cmnd}`);
    const t = this.topics;
    let other: string | undefined;
    await this.command(t.cmnd, state, `POWER ${state}`, (topic, payload) => {
      const reported = this.reportedState(topic, payload);
      if (reported === state) return reported;
      if (reported) other = reported;
      return undefined;
    }, () => (other ? `; it reported ${t.key} ${other} instead` : ""));
  }

  /** The relay state a message reports, if it reports one: stat/…/POWER text, or the POWER key of RESULT and tele STATE JSON. */
  private reportedState(topic: string, payload: string): State | undefined {
    const t = this.topics;
    let value: unknown;
    if (topic === t.stat) value = payload.trim();
    else if (topic === t.result || topic === t.teleState) {
      try {
        value = (JSON.parse(payload) as Record<string, unknown>)[t.key];
      } catch {
        return undefined;
      }
    }
    return value === "ON" || value === "OFF" ? value : undefined;
  }

  /**
   * Publishes one command and waits for the first message after it that `answer`
   * accepts; every wait is bounded by `timeout`, and the error says what was missing.
   */
  private async command<T>(
    topic: string,
    payload: string,
    what: string,
    answer: (topic: string, payload: string) => T | undefined,
    more: () => string = () => "",
  ): Promise<T> {
    const deadline = performance.now() + this.config.timeout * 1000;
    const mq = await this.client(deadline, what);
    this.used = true;
    await this.whileConnected(mq, deadline, what);
    let listener: Listener | undefined;
    const answered = new Promise<T>((resolve) => {
      listener = (topic, payload) => {
        const got = answer(topic, payload);
        if (got !== undefined) resolve(got);
      };
      this.listeners.add(listener);
    });
    try {
      // QoS 0: a command that cannot go now must not go later, after this call has failed (mqtt.js
      // resends unacknowledged QoS 1 messages when it reconnects). The device's report is the acknowledgement.
      await this.bounded(mq.publishAsync(topic, payload, { qos: 0 }), deadline, () =>
        mq.connected
          ? new DeadlineExceededError(`the MQTT broker at ${this.broker} did not take ${what} for ${topic} within ${this.config.timeout} s`)
          : new UnavailableError(`lost the MQTT broker at ${this.broker} while sending ${what}${this.lastError ? ` (${this.lastError})` : ""}`),
      ).catch((e) => {
        throw e instanceof DriverError ? e : new UnavailableError(`could not send ${what} for ${topic} to the MQTT broker at ${this.broker}: ${(e as Error).message}`);
      });
      return await this.bounded(answered, deadline, () => {
        const will = this.lastWill ? `; its last will says ${this.lastWill}` : "";
        const sub = what.startsWith("POWER") ? `${this.topics.stat}, ${this.topics.result}${this.topics.teleState ? ` or ${this.topics.teleState}` : ""}` : this.topics.status10;
        return new DeadlineExceededError(
          `the Tasmota device on ${topic} did not answer ${what} on ${sub} within ${this.config.timeout} s${more()}${will} (is it online and subscribed at ${this.broker}?)`,
        );
      });
    } finally {
      this.listeners.delete(listener!);
    }
  }

  /** Waits for a promise until the deadline or the call's cancellation, whichever comes first. */
  private bounded<T>(p: Promise<T>, deadline: number, late: () => Error): Promise<T> {
    const signal = callSignal();
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => finish(() => reject(late())), Math.max(0, deadline - performance.now()));
      const cancelled = () => finish(() => reject(new DriverError("cancelled")));
      signal.addEventListener("abort", cancelled, { once: true });
      const finish = (f: () => void) => {
        clearTimeout(timer);
        signal.removeEventListener("abort", cancelled);
        f();
      };
      p.then((v) => finish(() => resolve(v)), (e) => finish(() => reject(e)));
    });
  }

  /**
   * A command is sent only while connected and subscribed (again, after a reconnect): before
   * that the device's answer would be missed, and a command queued for later could switch the
   * plug after the call has given up.
   */
  private async whileConnected(mq: MqttClient, deadline: number, what: string): Promise<void> {
    if (this.ready && mq.connected) return;
    let waiter: (() => void) | undefined;
    const back = new Promise<void>((resolve) => this.readyWaiters.add((waiter = resolve)));
    await this.bounded(back, deadline, () =>
      new UnavailableError(`lost the MQTT broker at ${this.broker} and could not reconnect within ${this.config.timeout} s${this.lastError ? ` (${this.lastError})` : ""}; ${what} was not sent`),
    ).finally(() => this.readyWaiters.delete(waiter!));
  }

  private subscriptions(): string[] {
    const t = this.topics;
    return [t.stat, t.result, t.status10, t.teleState, t.lwt].filter((s): s is string => Boolean(s));
  }

  private setReady(ready: boolean): void {
    this.ready = ready;
    if (!ready) return;
    for (const w of this.readyWaiters) w();
    this.readyWaiters.clear();
  }

  /** The connection, made at first use: a broker that cannot be reached fails that call, clearly and in time. */
  private async client(deadline: number, what: string): Promise<MqttClient> {
    if (this.mq) return this.mq;
    this.connecting ??= this.connect(deadline, what).finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  private async connect(deadline: number, what: string): Promise<MqttClient> {
    const { connect } = await import("mqtt");
    const cfg = this.config;
    const timeoutMs = Math.max(1, Math.round(cfg.timeout * 1000));
    const options: IClientOptions = {
      protocol: cfg.transport === "websockets" ? (cfg.tls ? "wss" : "ws") : cfg.tls ? "mqtts" : "mqtt",
      ...(cfg.transport === "unix" ? { unixSocket: true, path: cfg.host } : { host: cfg.host, port: cfg.port }),
      ...(cfg.transport === "websockets" ? { path: "/mqtt" } : {}),
      clientId: cfg.client_id,
      username: cfg.username,
      password: cfg.password,
      ca: this.ca,
      connectTimeout: timeoutMs,
      reconnectPeriod: 1000,
      // A refused login is not retried by mqtt.js; that is what we want (the call says why).
      reconnectOnConnackError: false,
      // We subscribe again ourselves after a reconnect, to know when a command can be answered.
      resubscribe: false,
      queueQoSZero: false,
    };
    const mq = connect(options);
    mq.on("message", (topic, payload) => {
      const text = payload.toString();
      if (topic === this.topics.lwt) this.lastWill = text;
      for (const l of this.listeners) l(topic, text);
    });
    mq.on("error", (e) => {
      this.lastError = describe(e);
    });
    mq.on("offline", () => this.log.warn(`lost the MQTT broker at ${this.broker}${this.lastError ? ` (${this.lastError})` : ""}; reconnecting`));
    const first = new Promise<void>((resolve, reject) => {
      mq.once("connect", () => resolve());
      mq.once("error", (e) => reject(e));
      mq.once("close", () => reject(new Error(this.lastError ?? "the connection closed")));
    });
    try {
      await this.bounded(first, deadline, () => new DeadlineExceededError(`the MQTT broker at ${this.broker} did not answer within ${cfg.timeout} s; ${what} was not sent`));
      await this.bounded(mq.subscribeAsync(this.subscriptions(), { qos: 1 }), deadline, () =>
        new DeadlineExceededError(`the MQTT broker at ${this.broker} did not confirm the subscription to ${this.topics.stat} within ${cfg.timeout} s`),
      );
    } catch (e) {
      await mq.endAsync(true).catch(() => {});
      if (e instanceof DriverError) throw e;
      throw new UnavailableError(`cannot reach the MQTT broker at ${this.broker}: ${describe(e)}`);
    }
    mq.on("close", () => this.setReady(false));
    mq.on("connect", () => {
      this.log.info(`reconnected to the MQTT broker at ${this.broker}`);
      mq.subscribeAsync(this.subscriptions(), { qos: 1 }).then(
        () => this.setReady(true),
        (e) => this.log.warn(`could not subscribe to ${this.topics.stat} again after reconnecting: ${describe(e)}`),
      );
    });
    this.setReady(true);
    this.log.debug(`connected to the MQTT broker at ${this.broker}`);
    this.mq = mq;
    return mq;
  }
}

const REASONS: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset",
  ENOTFOUND: "host not found",
  EAI_AGAIN: "host name lookup failed",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  ENOENT: "no such socket",
  EACCES: "permission denied",
};

/** In words: a socket error by its errno, a refused login by its reason and what to check. */
function describe(e: unknown): string {
  const err = e as Error & { code?: string | number };
  if (typeof err.code === "string" && REASONS[err.code]) return REASONS[err.code]!;
  if (typeof err.code === "number" && /^Connection refused/.test(err.message)) {
    const hint = err.code === 4 || err.code === 5 || err.code === 134 || err.code === 135 ? " (check username and password)" : "";
    return `the broker refused the connection: ${err.message.replace(/^Connection refused: /, "")}${hint}`;
  }
  return err.message ?? String(e);
}
