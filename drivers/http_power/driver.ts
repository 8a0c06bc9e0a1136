/**
 * HttpPower: a power switch driven by HTTP requests, as upstream's
 * jumpstarter_driver_http_power (same type path, config keys, client label and
 * reading rules): one URL to switch on, one to switch off, one to read. That covers
 * Shelly Gen1 (`/relay/0?turn=on`), Shelly Gen2+ RPC (`/rpc/Switch.Set?id=0&on=true`,
 * `/rpc/Switch.GetStatus?id=0`) and any switch with a web API.
 * Beyond upstream: Digest auth (Shelly Gen2+ asks for it), a `timeout` on every
 * request, the reported `power` in readings, and errors that name the device and URL.
 */
import { callSignal, config, type ConfigOf, DeadlineExceededError, DriverError, InvalidArgumentError, UnavailableError } from "@jumpstarter/driver";
import { PowerInterface, type PowerReading } from "../power/driver.ts";
import { digestAuthorization, parseDigestChallenge } from "./digest.ts";

/** A reading as upstream's (voltage, current; 0 where the device reports none) plus the power, where it reports one. */
export type HttpPowerReading = PowerReading & { power?: number };

function httpUrl(opts: { description: string }): config.Field<string> {
  const expected = "an http:// or https:// URL";
  return {
    expected,
    optional: false,
    description: opts.description,
    parse(value, keyPath) {
      let url: URL | undefined;
      try {
        url = typeof value === "string" ? new URL(value) : undefined;
      } catch {}
      if (!url || (url.protocol !== "http:" && url.protocol !== "https:") || !url.hostname) {
        throw new config.SchemaError(keyPath, `expected ${expected}, got ${JSON.stringify(value)}`);
      }
      return value as string;
    },
  };
}

const METHOD = /^[A-Za-z]+$/;

function endpoint(what: string) {
  return config.object(
    {
      url: httpUrl({ description: `the URL to request to ${what}` }),
      method: config.withDefault(config.string({ nonEmpty: true, description: "HTTP method: GET, POST, PUT, ..." }), "GET"),
      data: config.optional(config.string({ description: "request body, sent with POST, PUT and PATCH" })),
      voltage_path: config.optional(config.string({ nonEmpty: true, description: "read: dotted JSON path to the voltage (default: top-level 'voltage')" })),
      current_path: config.optional(config.string({ nonEmpty: true, description: "read: dotted JSON path to the current (default: top-level 'current')" })),
      power_path: config.optional(config.string({ nonEmpty: true, description: "read: dotted JSON path to the power in W (default: top-level 'power' or 'apower')" })),
    },
    { description: `the request that ${what}s` },
  );
}

const credentials = (scheme: string) =>
  config.optional(
    config.object(
      {
        user: config.withDefault(config.string(), ""),
        password: config.withDefault(config.string(), ""),
      },
      { description: `${scheme} auth user and password` },
    ),
  );

const shape = {
  name: config.optional(config.string({ nonEmpty: true, description: "the device's name in logs and errors (default: Shelly for Shelly URLs, else device)" })),
  power_on: endpoint("power on"),
  power_off: endpoint("power off"),
  power_read: config.optional(endpoint("read power")),
  auth: config.optional(
    config.object(
      { basic: credentials("HTTP Basic (Shelly Gen1)"), digest: credentials("HTTP Digest (Shelly Gen2+: user admin)") },
      { description: "credentials sent with every request" },
    ),
  ),
  timeout: config.withDefault(config.number({ min: 0.001, description: "seconds to wait for each answer" }), 10),
};

type Endpoint = ConfigOf<typeof shape>["power_on"];
type Which = "power_on" | "power_off" | "power_read";

export class HttpPower extends PowerInterface<ConfigOf<typeof shape>> {
  static override readonly configShape = shape;
  static override readonly summary = "a power switch with an HTTP API: Shelly Gen1/Gen2+, or any on/off/read URLs";

  private readonly name: string;

  constructor(cfg: ConfigOf<typeof shape>) {
    super(cfg);
    for (const which of ["power_on", "power_off", "power_read"] as const) {
      const method = cfg[which]?.method;
      if (method !== undefined && !METHOD.test(method)) throw new Error(`${which}.method: expected an HTTP method such as GET or POST, got ${JSON.stringify(method)}`);
    }
    if (cfg.auth?.basic && cfg.auth.digest) throw new Error("auth: give basic or digest, not both");
    const shelly = [cfg.power_on, cfg.power_off].some((e) => /^\/(relay\/\d+|rpc(\/|$))/i.test(new URL(e.url).pathname));
    this.name = cfg.name ?? (shelly ? "Shelly" : "device");
  }

  override async on(): Promise<void> {
    this.log.info(`powering on ${this.name} via HTTP`);
    await this.request("power_on", this.config.power_on);
  }

  override async off(): Promise<void> {
    this.log.info(`powering off ${this.name} via HTTP`);
    await this.request("power_off", this.config.power_off);
  }

  /** One reading from `power_read`'s JSON answer; voltage and current default to 0 where the device reports none, as upstream. */
  override async *read(): AsyncGenerator<HttpPowerReading> {
    const ep = this.config.power_read;
    if (!ep) {
      throw new InvalidArgumentError(
        `power_read is not configured for ${this.name}: set power_read.url (a Shelly Gen2+ answers http://HOST/rpc/Switch.GetStatus?id=0)`,
      );
    }
    const text = await this.request("power_read", ep);
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch (e) {
      throw new InvalidArgumentError(`${this.name} at ${shown(ep.url)} did not answer JSON to read (${(e as Error).message}): ${snippet(text)}`);
    }
    const reading: HttpPowerReading = {
      voltage: extract(data, ep.voltage_path, "voltage") ?? 0,
      current: extract(data, ep.current_path, "current") ?? 0,
    };
    const power = ep.power_path ? extract(data, ep.power_path, "power") : (extract(data, undefined, "power") ?? extract(data, undefined, "apower"));
    if (power !== undefined) reading.power = power;
    yield reading;
  }

  /** Sends one configured request; answers the body of a 2xx reply, throws a named error for anything else. */
  private async request(which: Which, ep: Endpoint): Promise<string> {
    const url = new URL(ep.url);
    const method = ep.method.toUpperCase();
    const body = ep.data !== undefined && ["POST", "PUT", "PATCH"].includes(method) ? new TextEncoder().encode(ep.data) : undefined;
    const headers = new Headers();
    const basic = this.config.auth?.basic ?? (url.username ? { user: decodeURIComponent(url.username), password: decodeURIComponent(url.password) } : undefined);
    url.username = url.password = "";
    if (basic) headers.set("authorization", `Basic ${Buffer.from(`${basic.user}:${basic.password}`).toString("base64")}`);
    this.log.debug(`${method} ${url.href} (${which})`);
    const send = () => this.fetch(url, { method, headers, body }, which);
    let response = await send();
    const digest = this.config.auth?.digest;
    if (response.status === 401 && digest) {
      let challenge;
      try {
        challenge = parseDigestChallenge(response.headers.get("www-authenticate"));
      } catch (e) {
        throw new DriverError(`${this.name} at ${url.href} asks for Digest auth we cannot give: ${(e as Error).message}`);
      }
      if (challenge) {
        await response.body?.cancel();
        // As Shelly's documentation says for HTTP: a fresh challenge for every request.
        headers.set("authorization", digestAuthorization(challenge, { user: digest.user, password: digest.password, method, uri: url.pathname + url.search }));
        response = await send();
      }
    }
    const text = await this.readBody(response, url, which);
    if (!response.ok) throw new DriverError(this.refusal(response, text, url, which));
    // A whole JSON-RPC frame POSTed to a Shelly's /rpc answers 200 with an `error` member on failure.
    const rpcError = jsonRpcError(text);
    if (rpcError) throw new DriverError(`${this.name} at ${url.href} refused ${which}: ${rpcError}`);
    return text;
  }

  private async fetch(url: URL, init: RequestInit, which: Which): Promise<Response> {
    const signal = AbortSignal.any([AbortSignal.timeout(this.config.timeout * 1000), callSignal()]);
    try {
      return await fetch(url, { ...init, signal, redirect: "follow" });
    } catch (e) {
      throw this.unreachable(e, url, which);
    }
  }

  private async readBody(response: Response, url: URL, which: Which): Promise<string> {
    try {
      return await response.text();
    } catch (e) {
      throw this.unreachable(e, url, which);
    }
  }

  private unreachable(e: unknown, url: URL, which: Which): Error {
    const err = e as Error & { code?: string };
    if (err.name === "TimeoutError") {
      return new DeadlineExceededError(`${this.name} at ${url.href} did not answer ${which} within ${this.config.timeout} s (is it on the network? raise 'timeout' for a slow device)`);
    }
    if (err.name === "AbortError") return new DriverError(`${which} to ${this.name} at ${url.href} was cancelled`);
    return new UnavailableError(`cannot reach ${this.name} at ${url.href}: ${networkReason(err)}`);
  }

  private refusal(response: Response, text: string, url: URL, which: Which): string {
    const said = errorMessage(text);
    const base = `${this.name} at ${url.href} answered ${which} with HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ""}${said ? `: ${said}` : ""}`;
    if (response.status !== 401) return base;
    const asked = (response.headers.get("www-authenticate") ?? "").trim().split(/\s/)[0]?.toLowerCase();
    const configured = this.config.auth?.digest ? "digest" : this.config.auth?.basic || url.username ? "basic" : undefined;
    if (configured && (!asked || asked === configured)) return `${base} (check auth.${configured}.user and password)`;
    if (asked === "digest" || asked === "basic") return `${base} (it asks for ${asked === "digest" ? "Digest" : "Basic"} auth: set auth.${asked}.user and password)`;
    return base;
  }
}

/** upstream's rule: a configured path that is not there is an error; a default key that is not there is "not reported". */
function extract(data: unknown, path: string | undefined, key: string): number | undefined {
  const at = path ?? key;
  let cur: unknown = data;
  for (const part of at.split(".")) {
    if (Array.isArray(cur) && /^\d+$/.test(part)) cur = cur[Number(part)];
    else if (cur !== null && typeof cur === "object" && !Array.isArray(cur) && Object.hasOwn(cur, part)) cur = (cur as Record<string, unknown>)[part];
    else cur = undefined;
    if (cur === undefined) {
      if (path !== undefined) throw new InvalidArgumentError(`configured path '${at}' not found in the read answer`);
      return undefined;
    }
  }
  const n = typeof cur === "string" && cur.trim() !== "" ? Number(cur) : cur;
  if (typeof n !== "number" || !Number.isFinite(n)) {
    if (path === undefined && key !== "voltage" && key !== "current") return undefined;
    throw new InvalidArgumentError(`the value at '${at}' is not a number: ${JSON.stringify(cur)}`);
  }
  return n;
}

/** What a device said about a failure: Shelly Gen2's {code, message}, else the start of the text. */
function errorMessage(text: string): string {
  try {
    const j = JSON.parse(text) as { message?: unknown; error?: { message?: unknown } };
    if (typeof j?.message === "string") return j.message;
    if (typeof j?.error?.message === "string") return j.error.message;
  } catch {}
  return snippet(text);
}

function jsonRpcError(text: string): string | undefined {
  try {
    const j = JSON.parse(text) as { id?: unknown; error?: { code?: unknown; message?: unknown } };
    if (j && typeof j === "object" && "id" in j && j.error && typeof j.error === "object") {
      return `${String(j.error.message ?? "error")}${j.error.code !== undefined ? ` (code ${String(j.error.code)})` : ""}`;
    }
  } catch {}
  return undefined;
}

function snippet(text: string): string {
  const one = text.replace(/\s+/g, " ").trim();
  return one.length > 200 ? `${one.slice(0, 197)}...` : one;
}

/** A URL for messages: without credentials. */
function shown(href: string): string {
  const url = new URL(href);
  url.username = url.password = "";
  return url.href;
}

const REASONS: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset",
  ENOTFOUND: "host not found",
  EAI_AGAIN: "host name lookup failed",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  ETIMEDOUT: "connection timed out",
  ConnectionRefused: "connection refused",
};

function networkReason(e: Error & { code?: string }): string {
  const known = e.code ? REASONS[e.code] : undefined;
  if (known) return known;
  return e.code ? `${e.message} (${e.code})` : e.message;
}
