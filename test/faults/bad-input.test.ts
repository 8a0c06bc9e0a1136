/**
 * Bad input that `npm run chaos` found mishandled, on dist/jmp: a streaming driver
 * call to a method that does not exist (or is not a stream) answered a bare
 * "internal error"; a YAML alias bomb in a config file ended in a line that named
 * no file, with exit 1. Each test failed before its fix.
 */
import { afterAll, expect, test } from "bun:test";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { eventually } from "../../src/api/eventually.ts";
import { ExporterService } from "../../src/gen/jumpstarter/v1/jumpstarter_pb.ts";
import { EXPORT, Lab } from "../distributed/lab.ts";
import { freePort, jmp, tcpAccepts, tempDir } from "../helpers.ts";

const dir = tempDir("jmp-bad-input-");
const labs: Lab[] = [];

afterAll(async () => {
  await Promise.all(labs.map((l) => l.close()));
  dir.remove();
});

/** The first error of a server stream (undefined if it ends cleanly). */
async function streamError(stream: AsyncIterable<unknown>): Promise<ConnectError | undefined> {
  try {
    for await (const _ of stream) continue;
    return undefined;
  } catch (e) {
    return ConnectError.from(e);
  }
}

test("a streaming driver call to a missing driver, a missing method or a unary method is NotFound naming it, not an internal error", async () => {
  const l = await Lab.start();
  labs.push(l);
  const config = dir.file("direct.yaml", `apiVersion: jumpstarter.dev/v1alpha1\nkind: ExporterConfig\nexport:\n  power:\n    type: ${EXPORT.power.type}\n`);
  const port = await freePort();
  const exporter = l.spawn("the direct-mode exporter", ["run", "--exporter-config", config, "--tls-grpc-listener", `127.0.0.1:${port}`, "--tls-grpc-insecure"]);
  await eventually(() => tcpAccepts(port), { what: "the exporter to listen", interval: 20, signal: exporter.running });
  const session = createClient(ExporterService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }));
  const power = (await session.getReport({})).reports.find((r) => r.labels["jumpstarter.dev/name"] === "power")!;
  const cases: [string, string, string][] = [
    ["no-such-driver", "on", "no driver with uuid no-such-driver in this session"],
    [power.uuid, "noSuchMethod", "method noSuchMethod not found on driver MockPower"],
    [power.uuid, "on", "method on of MockPower is a unary call, not a streaming call"],
  ];
  for (const [uuid, method, message] of cases) {
    const e = await streamError(session.streamingDriverCall({ uuid, method, args: [] }));
    expect({ method, code: e && Code[e.code], message: e?.rawMessage }).toEqual({ method, code: "NotFound", message });
  }
  expect(exporter.output).not.toMatch(/^\s+at /m);
}, 30_000);

test("a YAML alias bomb in an exporter or client config is exit 2 with one line naming the file", async () => {
  const bomb = ["a: &a [x,x,x,x,x,x,x,x,x]", "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]", "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]", "d: [*c,*c,*c,*c,*c,*c,*c,*c,*c]", ""].join("\n");
  const exporterFile = dir.file("exporter-bomb.yaml", `${bomb}export: {}\n`);
  const clientFile = dir.file("client-bomb.yaml", `${bomb}endpoint: 127.0.0.1:1\ntoken: t\n`);
  for (const [args, file] of [[["shell", "--exporter-config", exporterFile, "--", "true"], exporterFile], [["exporter", "list", "--client-config", clientFile], clientFile]] as const) {
    const r = await jmp([...args]);
    const lines = r.stderr.split("\n").filter((x) => x.trim());
    expect({ code: r.code, lines: lines.length }).toEqual({ code: 2, lines: 1 });
    expect(lines[0]).toContain(`${file}: invalid YAML: `);
  }
}, 30_000);
