/**
 * Scenario 3, the RPC half: every method of ClientService, ControllerService,
 * AdminService and RouterService on a controller, and of ExporterService and
 * RouterService on a `jmp run` direct-mode exporter, sent what a broken or hostile
 * client sends: no message, an empty one, a truncated one, random bytes, an
 * unterminated varint, a length prefix longer than the body, half a prefix, the
 * compressed flag without an encoding, reserved flag bits, two messages to a unary
 * method, an unknown grpc-encoding, a garbage grpc-timeout; wrong types and absurd
 * nesting in DriverCall's `google.protobuf.Value` arguments; 32 MiB messages; and
 * thousands of streams left open on one connection.
 *
 * Every answer must be a gRPC status (or, for a server-streaming method given a
 * request it can read, an open stream), never a hang, a bare reset or a lost
 * connection; the process stays up, its memory stays bounded, and its log holds no
 * stack trace.
 */
import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type * as http2 from "node:http2";
import { type DescMessage, type DescMethod, type DescService, fromBinary, toBinary } from "@bufbuild/protobuf";
import { reflect } from "@bufbuild/protobuf/reflect";
import { ScalarType } from "@bufbuild/protobuf";
import { parse } from "yaml";
import { rssMiB } from "../bench/lib.ts";
import { loadClientConfig } from "../src/common/client-config.ts";
import { caPem } from "../src/common/tls.ts";
import { AdminService } from "../src/gen/jumpstarter/admin/v1/admin_pb.ts";
import { ClientService } from "../src/gen/jumpstarter/client/v1/client_pb.ts";
import { ControllerService, ExporterService, GetReportResponseSchema } from "../src/gen/jumpstarter/v1/jumpstarter_pb.ts";
import { RouterService } from "../src/gen/jumpstarter/v1/router_pb.ts";
import { eventually } from "../src/api/eventually.ts";
import { freePort, tcpAccepts } from "../test/helpers.ts";
import type { Lab, Proc } from "../test/distributed/lab.ts";
import { closeLab, type Options, type Row, row, say, stackLines, startLab } from "./lib.ts";
import { type Answer, call, connect, describe, frame, type Peer } from "./wire.ts";

const MiB = 2 ** 20;
/** Past any sane message limit (gRPC's default is 4 MiB), and a few at once. */
const HUGE = 32 * MiB;
/** What 32 MiB messages or thousands of open streams may add to a process: memory must not follow the input. */
const RSS_GROWTH_LIMIT_MIB = 96;
/** What the whole of this scenario may leave behind (about 3 000 bad requests, the big messages, the streams). */
const RSS_AFTER_LIMIT_MIB = 128;
const ANSWER_WITHIN_MS = 5_000;
/**
 * What a second, identical round of bad requests may add: a heap settles, a leak
 * keeps growing. Measured RSS swings by up to 40 MiB from round to round with no
 * leak (six rounds: 226, 225, 233, 213, 249, 210 MiB), hence the margin.
 */
const LEAK_LIMIT_MIB = 48;

type Kind = "Client" | "Exporter" | "Admin";

interface Target {
  name: string;
  peer: Peer;
  proc: Proc;
  services: DescService[];
  /** The metadata that authenticates a call of `method`, or none where the target has no auth. */
  auth(method: DescMethod): Record<string, string>;
}

/** A message of `desc` with every scalar set (nested messages too, two levels): something worth truncating. */
function sample(desc: DescMessage, depth = 0): ReturnType<typeof reflect>["message"] {
  const r = reflect(desc);
  for (const f of desc.fields) {
    try {
      if (f.fieldKind === "scalar") r.set(f, scalarSample(f.scalar));
      else if (f.fieldKind === "enum") r.set(f, f.enum.values.at(-1)!.number);
      else if (f.fieldKind === "message" && depth < 2) r.set(f, reflect(f.message, sample(f.message, depth + 1) as never));
    } catch {
      // A field this filler cannot fill stays empty.
    }
  }
  return r.message;
}

function scalarSample(t: ScalarType): unknown {
  switch (t) {
    case ScalarType.STRING:
      return "chaos-sample-value-with-some-length";
    case ScalarType.BOOL:
      return true;
    case ScalarType.BYTES:
      return new Uint8Array(40).fill(1);
    case ScalarType.INT64:
    case ScalarType.UINT64:
    case ScalarType.SINT64:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return 7n;
    default:
      return 7;
  }
}

/** The bad requests for one method: a name, the request body's chunks, extra headers. */
function badRequests(method: DescMethod): [string, Uint8Array[], Record<string, string>?][] {
  let valid = toBinary(method.input, sample(method.input) as never);
  if (valid.length < 4) valid = Uint8Array.of(0x0a, 0x10, ...new Uint8Array(16).fill(0x61));
  const random = randomBytes(1 + Math.floor(Math.random() * 2048));
  return [
    ["no message", []],
    ["an empty message", [frame(new Uint8Array())]],
    ["a truncated message", [frame(valid.subarray(0, valid.length >> 1))]],
    ["random bytes", [frame(random)]],
    ["an unterminated varint", [frame(Uint8Array.of(0x08, 0xff, 0xff, 0xff))]],
    ["a length prefix longer than the body", [frame(valid, { length: valid.length + 100 })]],
    ["half a prefix", [Uint8Array.of(0, 0, 0)]],
    ["the compressed flag without an encoding", [frame(valid, { flags: 1 })]],
    ["reserved flag bits", [frame(valid, { flags: 0x80 })]],
    ["two messages", [frame(valid), frame(valid)]],
    ["an unknown grpc-encoding", [frame(valid, { flags: 1 })], { "grpc-encoding": "chaos" }],
    ["a garbage grpc-timeout", [frame(valid)], { "grpc-timeout": "soon" }],
  ];
}

/**
 * Whether an answer is one a gRPC client can act on: a status; or, from a
 * server-streaming method given one message it can read, a stream that is open
 * (it may say nothing until it has something: LogStream, Status).
 */
function clean(method: DescMethod, body: Uint8Array[], a: Answer): boolean {
  if (a.outcome.kind === "status") return !unexpected(a);
  return a.outcome.kind === "hang" && method.methodKind === "server_streaming" && readable(method, body);
}

/**
 * An exception the server did not expect, masked: Connect's "internal error" for
 * anything a handler throws that is not a ConnectError, the controller's own
 * "internal error in the controller". A crash path, whatever the status says.
 */
function unexpected(a: Answer): boolean {
  return a.outcome.kind === "status" && a.outcome.code === 13 && /^internal error($| in the controller)/.test(a.outcome.message);
}

/** One whole message that decodes as the method's input (unknown fields and all), as the server reads it. */
function readable(method: DescMethod, body: Uint8Array[]): boolean {
  if (body.length !== 1 || body[0]!.length < 5 || (body[0]![0]! & 1) !== 0) return false;
  const b = body[0]!;
  const n = new DataView(b.buffer, b.byteOffset).getUint32(1);
  if (n !== b.length - 5) return false;
  try {
    fromBinary(method.input, b.subarray(5));
    return true;
  } catch {
    return false;
  }
}

/** Sends every bad request to every method of the target; each unclean answer is a problem. */
async function fuzzMethods(target: Target, out: Row, opts: Options, report: boolean): Promise<void> {
  const session = await connect(target.peer);
  const codes = new Map<number | string, number>();
  try {
    for (const service of target.services) {
      await Promise.all(service.methods.map(async (method) => {
        const path = `/${service.typeName}/${method.name}`;
        const requests = [...badRequests(method).map(([what, body, headers]) => ({ what, body, headers: { ...target.auth(method), ...headers } })),
          { what: "no credentials", body: [frame(randomBytes(16))], headers: {} }];
        await Promise.all(requests.map(async (r) => {
          const { answer, stream } = call(session, path, r.body, { headers: r.headers, timeoutMs: ANSWER_WITHIN_MS });
          const a = await answer;
          out.faults++;
          const key = a.outcome.kind === "status" ? a.outcome.code : a.outcome.kind;
          codes.set(key, (codes.get(key) ?? 0) + 1);
          if (!clean(method, r.body, a)) out.problems.push(`${target.name} ${service.name}.${method.name} given ${r.what}: ${describe(a.outcome)}`);
          if (!stream.closed) stream.close();
        }));
      }));
      if (report) say(opts, `${target.name}: ${service.name} fuzzed`);
    }
    // Neither gRPC nor Connect (whose JSON the same port speaks): 415, or a status, and nothing worse.
    const path = `/${target.services[0]!.typeName}/${target.services[0]!.methods[0]!.name}`;
    const { answer } = call(session, path, [new TextEncoder().encode("hello")], { headers: { "content-type": "text/plain" }, timeoutMs: ANSWER_WITHIN_MS });
    const a = await answer;
    out.faults++;
    if (!(a.outcome.kind === "status" || (a.outcome.kind === "http" && a.outcome.status === 415))) out.problems.push(`${target.name} given text/plain: ${describe(a.outcome)}`);
  } finally {
    session.destroy();
  }
  if (report) out.notes.push(`${target.name}: answers ${[...codes].map(([k, n]) => `${k}×${n}`).join(", ")}`);
}

/** A protobuf varint. */
function varint(n: number): number[] {
  const out: number[] = [];
  for (; n > 0x7f; n >>>= 7) out.push((n & 0x7f) | 0x80);
  out.push(n);
  return out;
}

/** A length-delimited field: tag byte, length, bytes. */
function field(tag: number, bytes: Uint8Array): Uint8Array {
  return Buffer.concat([Uint8Array.of(tag, ...varint(bytes.length)), bytes]);
}

/** Nested `google.protobuf.Value` lists, `depth` deep, encoded by hand (a message built that deep would be the test's own overflow). */
function nestedValue(depth: number): Uint8Array {  // Innermost: Value{null_value: 0}. Each level: Value{list_value(6): ListValue{values(1): [inner]}}.
  const sizes = [2];
  for (let i = 0; i < depth; i++) {
    const list = 1 + varint(sizes.at(-1)!).length + sizes.at(-1)!;
    sizes.push(1 + varint(list).length + list);
  }
  const out = new Uint8Array(sizes.at(-1)!);
  let at = 0;
  for (let i = depth; i > 0; i--) {
    const inner = sizes[i - 1]!;
    const list = 1 + varint(inner).length + inner;
    for (const b of [0x32, ...varint(list), 0x0a, ...varint(inner)]) out[at++] = b;
  }
  out.set([0x08, 0x00], at);
  return out;
}

/** DriverCallRequest{uuid, method, args} with each arg given already encoded as a Value. */
function driverCall(uuid: string, method: string, args: Uint8Array[]): Uint8Array {
  const enc = new TextEncoder();
  return Buffer.concat([field(0x0a, enc.encode(uuid)), field(0x12, enc.encode(method)), ...args.map((a) => field(0x1a, a))]);
}

/** Value encodings of the wrong types (and shapes) for a driver method's arguments. */
function wrongValues(): [string, Uint8Array][] {
  const str = (s: string) => field(0x1a, new TextEncoder().encode(s));
  const num = (x: number) => { const b = new Uint8Array(9); b[0] = 0x11; new DataView(b.buffer).setFloat64(1, x, true); return b; };
  return [
    ["a number", num(5)],
    ["NaN", num(Number.NaN)],
    ["Infinity", num(Number.POSITIVE_INFINITY)],
    ["a bool", Uint8Array.of(0x20, 0x01)],
    ["null", Uint8Array.of(0x08, 0x00)],
    ["an empty Value (no kind)", new Uint8Array()],
    ["an empty struct", Uint8Array.of(0x2a, 0x00)],
    ["an empty list", Uint8Array.of(0x32, 0x00)],
    ["a 1 MiB string", str("x".repeat(MiB))],
    ["invalid UTF-8", Uint8Array.of(0x1a, 0x02, 0xff, 0xfe)],
    ["an unknown kind (field 15)", Uint8Array.of(0x78, 0x01)],
    ["lists nested 1000 deep", nestedValue(1000)],
    ["lists nested 100000 deep", nestedValue(100_000)],
  ];
}

/** Every driver method of the exporter called with every wrong argument. */
async function fuzzDriverArgs(target: Target, out: Row, report: boolean): Promise<void> {
  const session = await connect(target.peer);
  try {
    const report = await firstMessage(session, `/${ExporterService.typeName}/GetReport`);
    const drivers = fromBinary(GetReportResponseSchema, report).reports;
    const calls: [string, string, string][] = [];
    for (const d of drivers) {
      const methods = Object.keys(d.methodsDescription);
      for (const m of methods.length ? methods : ["on", "callMethod", "getMethods"]) calls.push([d.uuid, m, d.labels["jumpstarter.dev/name"] ?? d.uuid]);
    }
    calls.push(["no-such-uuid", "on", "nothing"], [drivers[0]!.uuid, "noSuchMethod", "the root"]);
    for (const [uuid, method, name] of calls) {
      await Promise.all(wrongValues().flatMap(([what, value]) => ["DriverCall", "StreamingDriverCall"].map(async (rpc) => {
        const body = [frame(driverCall(uuid, method, [value, value]))];
        const { answer, stream } = call(session, `/${ExporterService.typeName}/${rpc}`, body, { timeoutMs: ANSWER_WITHIN_MS });
        const a = await answer;
        out.faults++;
        // A driver's stream may stay open and quiet only for a call it accepted: these it cannot accept.
        if ((a.outcome.kind !== "status" || unexpected(a)) && report) out.problems.push(`${target.name} ${rpc} ${name}.${method}(${what}): ${describe(a.outcome)}`);
        if (!stream.closed) stream.close();
      })));
    }
  } finally {
    session.destroy();
  }
}

/** The first response message of a call with an empty request, for a call that must work. */
function firstMessage(session: http2.ClientHttp2Session, path: string): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const s = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers" });
    const chunks: Buffer[] = [];
    s.on("data", (c: Buffer) => chunks.push(c));
    s.on("error", reject);
    s.on("end", () => {
      const all = Buffer.concat(chunks);
      if (all.length < 5) return reject(new Error(`${path} answered no message`));
      resolve(all.subarray(5, 5 + all.readUInt32BE(1)));
    });
    s.end(frame(new Uint8Array()));
  });
}

/** `count` huge messages at once to `path`: each must be refused with ResourceExhausted, and memory must not follow. */
async function hugeMessages(target: Target, path: string, method: DescMethod, count: number, out: Row): Promise<void> {
  const session = await connect(target.peer);
  const before = rssMiB(target.proc.pid);
  let peak = before;
  const sampler = setInterval(() => {
    try {
      peak = Math.max(peak, rssMiB(target.proc.pid));
    } catch {
      // Gone: the crash check says so.
    }
  }, 50);
  try {
    const body = frame(randomBytes(HUGE));
    const answers = await Promise.all(Array.from({ length: count }, () => call(session, path, [body], { headers: target.auth(method), timeoutMs: 30_000 }).answer));
    out.faults += count;
    const seen = answers.map((a) => describe(a.outcome));
    for (const a of answers) {
      if (a.outcome.kind !== "status" || a.outcome.code !== 8) out.problems.push(`${target.name} ${path} given a ${HUGE / MiB} MiB message: ${describe(a.outcome)} (expected ResourceExhausted)`);
    }
    out.notes.push(`${target.name}: ${count}× ${HUGE / MiB} MiB to ${path.slice(path.lastIndexOf("/") + 1)}: ${[...new Set(seen)].join("; ").slice(0, 160)}; RSS ${before.toFixed(0)} → peak ${peak.toFixed(0)} MiB`);
    if (peak - before > RSS_GROWTH_LIMIT_MIB) out.problems.push(`${target.name}: ${count} messages of ${HUGE / MiB} MiB took its RSS from ${before.toFixed(0)} to ${peak.toFixed(0)} MiB (limit +${RSS_GROWTH_LIMIT_MIB} MiB): requests are read whole, with no size limit`);
  } finally {
    clearInterval(sampler);
    session.destroy();
  }
}

/** `count` calls left open on one connection; meanwhile and after, another connection must still be answered. */
async function streamFlood(target: Target, path: string, method: DescMethod, count: number, out: Row, probe: () => Promise<boolean>): Promise<void> {
  const session = await connect(target.peer);
  const before = rssMiB(target.proc.pid);
  try {
    const open = Array.from({ length: count }, () => call(session, path, [], { headers: target.auth(method), keepOpen: true, timeoutMs: 60_000 }));
    out.faults += count;
    // Each stream is open (and announced) once the server has its headers; a PING round-trip after them says so.
    await new Promise<void>((r) => session.ping(() => r()));
    const t0 = performance.now();
    const answered = await probe();
    const ms = performance.now() - t0;
    const during = rssMiB(target.proc.pid);
    if (!answered || ms > ANSWER_WITHIN_MS) out.problems.push(`${target.name}: with ${count} streams open on one connection, another connection's call ${answered ? `took ${Math.round(ms)} ms` : "failed"}`);
    session.destroy();
    const ends = await Promise.all(open.map((o) => o.answer));
    const bad = ends.filter((a) => a.outcome.kind === "hang");
    if (bad.length) out.problems.push(`${target.name}: ${bad.length} of ${count} open streams never ended after their connection closed`);
    out.notes.push(`${target.name}: ${count} open streams on one connection: RSS ${before.toFixed(0)} → ${during.toFixed(0)} MiB, another call answered in ${Math.round(ms)} ms`);
    if (during - before > RSS_GROWTH_LIMIT_MIB) out.problems.push(`${target.name}: ${count} open streams took its RSS from ${before.toFixed(0)} to ${during.toFixed(0)} MiB (limit +${RSS_GROWTH_LIMIT_MIB} MiB): nothing limits the streams of one connection`);
  } finally {
    session.destroy();
  }
}

/** A call that must work: the target is up and answering. */
async function alive(target: Target, path: string, method: DescMethod, body: Uint8Array = new Uint8Array()): Promise<boolean> {
  const session = await connect(target.peer).catch(() => undefined);
  if (!session) return false;
  try {
    const a = await call(session, path, [frame(body)], { headers: target.auth(method), timeoutMs: ANSWER_WITHIN_MS }).answer;
    return a.outcome.kind === "status" && a.outcome.code === 0;
  } finally {
    session.destroy();
  }
}

const DIRECT_CONFIG = `apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata: {namespace: default, name: fuzz}
export:
  power:
    type: jumpstarter_driver_power.driver.MockPower
  shell:
    type: jumpstarter_driver_shell.driver.Shell
    config:
      methods:
        hello: "echo hello $1"
  echo:
    type: jumpstarter_driver_network.driver.EchoNetwork
`;

async function targets(lab: Lab): Promise<{ controller: Target; exporter: Target }> {
  const env = { ...process.env, ...lab.env };
  const admin = parse(readFileSync(join(lab.dataDir, "admin.yaml"), "utf8")) as { token: string; tls: { ca: string } };
  const ca = caPem(admin.tls.ca);
  const tokens: Record<Kind | "Rotator", string> = {
    Admin: admin.token,
    Client: loadClientConfig("fuzz", env).token!,
    Rotator: loadClientConfig("rotator", env).token!,
    Exporter: (parse(readFileSync(await lab.addExporter("fz-1", { fuzz: "yes" }), "utf8")) as { token: string }).token,
  };
  const kindOf = (m: DescMethod): Kind | "Rotator" => {
    if (m.parent.typeName === AdminService.typeName) return "Admin";
    if (m.parent.typeName === ClientService.typeName) return m.name === "RotateToken" ? "Rotator" : "Client";
    if (m.parent.typeName === ControllerService.typeName) return ["Dial", "GetLease", "RequestLease", "ListLeases", "ReleaseLease", "GetServiceEndpoints"].includes(m.name) ? "Client" : "Exporter";
    return "Client";
  };
  const file = join(lab.dir.path, "direct.yaml");
  writeFileSync(file, DIRECT_CONFIG);
  const port = await freePort();
  const direct = lab.spawn("the direct-mode exporter", ["run", "--exporter-config", file, "--tls-grpc-listener", `127.0.0.1:${port}`, "--tls-grpc-insecure"]);
  await eventually(() => tcpAccepts(port), { what: "the direct-mode exporter to listen", interval: 20, signal: direct.running });
  return {
    controller: {
      name: "controller",
      peer: { url: `https://${lab.endpoint}`, ca },
      proc: lab.controller,
      services: [ClientService, ControllerService, AdminService, RouterService],
      auth: (m) => ({ authorization: `Bearer ${tokens[kindOf(m)]}` }),
    },
    exporter: {
      name: "exporter",
      peer: { url: `http://127.0.0.1:${port}` },
      proc: direct,
      services: [ExporterService, RouterService],
      auth: () => ({}),
    },
  };
}

export async function malformedRpcs(opts: Options, rows: Row[]): Promise<void> {
  const outs = { controller: row("malformed RPCs: controller (4 services)", rows), exporter: row("malformed RPCs: jmp run direct mode (2 services)", rows) };
  const lab = await startLab(opts);
  try {
    await lab.addClient("fuzz");
    await lab.addClient("rotator");
    const t = await targets(lab);
    const listLeases = ClientService.methods.find((m) => m.name === "ListLeases")!;
    const createLease = ClientService.methods.find((m) => m.name === "CreateLease")!;
    const getStatus = ExporterService.methods.find((m) => m.name === "GetStatus")!;
    const driverCallM = ExporterService.methods.find((m) => m.name === "DriverCall")!;
    const controllerAlive = () => alive(t.controller, `/${ClientService.typeName}/ListLeases`, listLeases, toBinary(listLeases.input, reflect(listLeases.input, undefined).message as never));
    const exporterAlive = () => alive(t.exporter, `/${ExporterService.typeName}/GetStatus`, getStatus);
    const flood = opts.quick ? 1000 : 5000;
    for (const [target, out, isAlive, huge, open] of [
      [t.controller, outs.controller, controllerAlive, [`/${ClientService.typeName}/CreateLease`, createLease], [`/${ClientService.typeName}/ListLeases`, listLeases]],
      [t.exporter, outs.exporter, exporterAlive, [`/${ExporterService.typeName}/DriverCall`, driverCallM], [`/${ExporterService.typeName}/DriverCall`, driverCallM]],
    ] as const) {
      if (!(await isAlive())) out.problems.push(`${target.name}: the control call fails before any fuzzing (the checks below would prove nothing)`);
      const rss0 = rssMiB(target.proc.pid);
      // Twice: the first round may grow the heap to its working size; the second must not grow it further.
      const rounds: number[] = [];
      for (let round = 0; round < 2; round++) {
        await fuzzMethods(target, out, opts, round === 0);
        if (target === t.exporter) await fuzzDriverArgs(target, out, round === 0);
        rounds.push(rssMiB(target.proc.pid));
      }
      out.notes.push(`${target.name}: RSS ${rss0.toFixed(0)} MiB at the start, ${rounds.map((r) => r.toFixed(0)).join(" and ")} MiB after two rounds of bad requests`);
      if (rounds[1]! - rounds[0]! > LEAK_LIMIT_MIB) out.problems.push(`${target.name}: a second round of the same bad requests grew its RSS from ${rounds[0]!.toFixed(0)} to ${rounds[1]!.toFixed(0)} MiB (a leak?)`);
      await hugeMessages(target, huge[0], huge[1], opts.quick ? 4 : 8, out);
      await streamFlood(target, open[0], open[1], flood, out, isAlive);
      const rss1 = rssMiB(target.proc.pid);
      if (target.proc.exitCode !== null) out.problems.push(`${target.name} exited with ${target.proc.exitCode}`);
      else if (!(await isAlive())) out.problems.push(`${target.name} no longer answers a valid call after the fuzzing`);
      out.notes.push(`${target.name}: RSS ${rss0.toFixed(0)} MiB before, ${rss1.toFixed(0)} MiB after`);
      if (rss1 - rss0 > RSS_AFTER_LIMIT_MIB) out.problems.push(`${target.name}: RSS grew from ${rss0.toFixed(0)} to ${rss1.toFixed(0)} MiB over the fuzzing`);
      const stack = stackLines(target.proc.output);
      if (stack.length) out.problems.push(`${target.name}'s log has a stack trace: ${stack.slice(0, 2).map((l) => l.trim()).join(" / ")}`);
    }
  } finally {
    await closeLab(opts, lab).catch((e: Error) => outs.exporter.problems.push(`cleanup: ${e.message.split("\n")[0]}`));
  }
}
