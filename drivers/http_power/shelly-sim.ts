/**
 * Shelly plugs for tests: HTTP servers that answer as Shelly's documented local APIs
 * do. Gen1 (`/relay/N?turn=on|off|toggle`, `/meter/N`, `/status`; Basic auth when
 * set) and Gen2+ RPC (`/rpc/Switch.Set`, `/rpc/Switch.GetStatus` by GET with a query
 * or POST with params, whole JSON-RPC frames POSTed to `/rpc`; SHA-256 Digest auth
 * as user `admin` when a password is set; `Connection: close` on every answer).
 * Each remembers its relays and every request it was sent.
 */
import { createHash, randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";

export interface SeenRequest {
  method: string;
  /** Path and query, as sent. */
  url: string;
  body: string;
  authorization?: string;
}

export interface ShellySim {
  /** http://127.0.0.1:PORT */
  url: string;
  /** Relay (Gen1) or switch (Gen2) outputs. */
  on: boolean[];
  requests: SeenRequest[];
  close(): Promise<void>;
}

/** What a plug draws while on; 0 while off. */
const LOAD = { voltage: 231.4, current: 0.113, power: 26.1 };

interface Answer {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

async function listen(handle: (req: SeenRequest, raw: IncomingMessage) => Answer, closeEach: boolean): Promise<Omit<ShellySim, "on">> {
  const requests: SeenRequest[] = [];
  const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    let body = "";
    for await (const chunk of req) body += chunk;
    const seen = { method: req.method ?? "", url: req.url ?? "", body, authorization: req.headers.authorization };
    requests.push(seen);
    const answer = handle(seen, req);
    const text = typeof answer.body === "string" ? answer.body : JSON.stringify(answer.body);
    res.writeHead(answer.status, {
      "content-type": typeof answer.body === "string" ? "text/plain" : "application/json",
      ...(closeEach ? { connection: "close" } : {}),
      ...answer.headers,
    });
    res.end(text);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A Shelly Gen1 (Plug S, 1PM, 2.5): REST-ish GETs, Basic auth when `auth` is given. */
export async function shellyGen1(opts: { relays?: number; auth?: { user: string; password: string } } = {}): Promise<ShellySim> {
  const on = Array.from({ length: opts.relays ?? 1 }, () => false);
  const relay = (i: number) => ({
    ison: on[i], has_timer: false, timer_started: 0, timer_duration: 0, timer_remaining: 0, overpower: false, source: "http",
  });
  const meter = (i: number) => ({
    power: on[i] ? LOAD.power : 0, overpower: 0, is_valid: true, timestamp: Math.floor(Date.now() / 1000), counters: [0, 0, 0], total: 1234,
  });
  const expected = opts.auth && `Basic ${Buffer.from(`${opts.auth.user}:${opts.auth.password}`).toString("base64")}`;
  const sim = await listen((req) => {
    if (expected && req.authorization !== expected) {
      return { status: 401, body: "401 Unauthorized", headers: { "www-authenticate": 'Basic realm="shelly1pm-84CCA8"' } };
    }
    const url = new URL(req.url, "http://shelly");
    const m = /^\/(relay|meter)\/(\d+)$/.exec(url.pathname);
    if (m) {
      const i = Number(m[2]);
      if (i >= on.length) return { status: 404, body: "Not Found" };
      if (m[1] === "meter") return { status: 200, body: meter(i) };
      const turn = url.searchParams.get("turn");
      if (turn === "on" || turn === "off") on[i] = turn === "on";
      else if (turn === "toggle") on[i] = !on[i];
      else if (turn !== null) return { status: 400, body: "Bad turn!" };
      return { status: 200, body: relay(i) };
    }
    if (url.pathname === "/status") {
      return { status: 200, body: { relays: on.map((_, i) => relay(i)), meters: on.map((_, i) => meter(i)), uptime: 4711 } };
    }
    return { status: 404, body: "Not Found" };
  }, false);
  return { ...sim, on };
}

/** A Shelly Gen2+ (Plus Plug S, Plug S G3): JSON-RPC over HTTP, SHA-256 Digest auth as `admin` when `password` is given. */
export async function shellyGen2(opts: { switches?: number; password?: string; id?: string } = {}): Promise<ShellySim> {
  const id = opts.id ?? "shellyplugsg3-8cbfea9f1a2c";
  const on = Array.from({ length: opts.switches ?? 1 }, () => false);
  const nonces = new Set<string>();
  const error = (status: number, code: number, message: string): Answer => ({ status, body: { code, message } });

  const call = (method: string, params: Record<string, unknown>): { result?: unknown; error?: { code: number; message: string } } => {
    if (method !== "Switch.Set" && method !== "Switch.GetStatus" && method !== "Shelly.GetDeviceInfo") {
      return { error: { code: 404, message: `No handler for ${method}` } };
    }
    if (method === "Shelly.GetDeviceInfo") return { result: { id, gen: 2, model: "S3PL-00112EU", auth_en: Boolean(opts.password) } };
    if (params.id === undefined) return { error: { code: -103, message: "Missing required argument 'id'!" } };
    const i = Number(params.id);
    if (!Number.isInteger(i) || i < 0 || i >= on.length) return { error: { code: -105, message: `Argument 'id', value ${String(params.id)} not found!` } };
    if (method === "Switch.GetStatus") {
      const draw = on[i] ? LOAD : { voltage: LOAD.voltage, current: 0, power: 0 };
      return {
        result: {
          id: i, source: "HTTP_in", output: on[i], apower: draw.power, voltage: draw.voltage, freq: 50, current: draw.current,
          aenergy: { total: 1234.5, by_minute: [0, 0, 0], minute_ts: Math.floor(Date.now() / 1000) }, temperature: { tC: 34.1, tF: 93.4 },
        },
      };
    }
    if (typeof params.on !== "boolean") return { error: { code: -103, message: "Missing required argument 'on'!" } };
    const was = on[i];
    on[i] = params.on;
    return { result: { was_on: was } };
  };

  const authorized = (req: SeenRequest): boolean => {
    if (!opts.password) return true;
    const header = req.authorization ?? "";
    if (!header.startsWith("Digest ")) return false;
    const p: Record<string, string> = {};
    for (const m of header.slice(7).matchAll(/(\w+)=(?:"([^"]*)"|([^,\s]*))/g)) p[m[1]!] = m[2] ?? m[3]!;
    if (p.username !== "admin" || p.realm !== id || !nonces.has(p.nonce!) || p.uri !== req.url || p.qop !== "auth") return false;
    const h = (s: string) => createHash("sha256").update(s).digest("hex");
    const ha1 = h(`admin:${id}:${opts.password}`);
    const ha2 = h(`${req.method}:${p.uri}`);
    return p.response === h(`${ha1}:${p.nonce}:${p.nc}:${p.cnonce}:auth:${ha2}`);
  };

  const sim = await listen((req) => {
    const url = new URL(req.url, "http://shelly");
    if (url.pathname !== "/shelly" && !authorized(req)) {
      const nonce = randomBytes(8).toString("hex");
      nonces.add(nonce);
      return {
        status: 401,
        body: { code: 401, message: "unauthorized" },
        headers: { "www-authenticate": `Digest qop="auth", realm="${id}", nonce="${nonce}", algorithm=SHA-256` },
      };
    }
    if (url.pathname === "/shelly") return { status: 200, body: { id, gen: 2, auth_en: Boolean(opts.password) } };
    if (url.pathname === "/rpc" && req.method === "POST") {
      let frame: { id?: unknown; method?: unknown; params?: Record<string, unknown> };
      try {
        frame = JSON.parse(req.body);
      } catch {
        return error(400, -32700, "Parse error");
      }
      const out = call(String(frame.method), frame.params ?? {});
      return { status: 200, body: { id: frame.id, src: id, ...out } };
    }
    const m = /^\/rpc\/([\w.]+)$/.exec(url.pathname);
    if (!m) return { status: 404, body: "Not Found" };
    let params: Record<string, unknown>;
    if (req.method === "POST") {
      try {
        params = req.body ? JSON.parse(req.body) : {};
      } catch {
        return error(400, -32700, "Parse error");
      }
    } else {
      // Query values are JSON where they parse (numbers, true, false), strings otherwise.
      params = Object.fromEntries([...url.searchParams].map(([k, v]) => [k, parseLoose(v)]));
    }
    const out = call(m[1]!, params);
    return out.error ? error(out.error.code === 404 ? 404 : 500, out.error.code, out.error.message) : { status: 200, body: out.result };
  }, true);
  return { ...sim, on };
}

function parseLoose(v: string): unknown {
  try {
    return JSON.parse(v);
  } catch {
    return v;
  }
}
