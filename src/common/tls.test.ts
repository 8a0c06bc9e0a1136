import { afterAll, beforeAll, expect, test } from "bun:test";
import type { AddressInfo } from "node:net";
import * as tls from "node:tls";
// Test-only: the controller's CA makes a real certificate chain to handshake against.
import { type CertAndKey, createCA, createServerCert } from "./pki.ts";
import { UserError } from "./errors.ts";
import { caPem, insecureFromEnv, parseEndpoint, tlsConnectOptions } from "./tls.ts";

let ca: CertAndKey;
let server: tls.Server;
let port: number;

beforeAll(async () => {
  ca = await createCA();
  const cert = await createServerCert(ca, ["ctl.lab.example"]);
  server = tls.createServer({ cert: cert.certPem, key: cert.keyPem, ALPNProtocols: ["h2"] }, (s) => s.end());
  await new Promise<void>((resolve) => server.listen(0, resolve));
  port = (server.address() as AddressInfo).port;
});
afterAll(() => server.close());

function connect(options: tls.ConnectionOptions): Promise<{ authorized: boolean; alpn: string | false | null }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect(options, () => {
      resolve({ authorized: socket.authorized, alpn: socket.alpnProtocol });
      socket.destroy();
    });
    socket.once("error", (e: NodeJS.ErrnoException) => reject(new Error(e.code ?? e.message)));
  });
}

const base64 = (pem: string) => Buffer.from(pem).toString("base64");

test("endpoints parse as upstream's targets: HOST:PORT, [v6]:PORT, a bare host on 443", () => {
  expect(parseEndpoint("ctl.lab.example:8082")).toEqual({ host: "ctl.lab.example", port: 8082 });
  expect(parseEndpoint("[::1]:8082")).toEqual({ host: "::1", port: 8082 });
  expect(parseEndpoint("fd00::7")).toEqual({ host: "fd00::7", port: 443 });
  expect(parseEndpoint("ctl.lab.example")).toEqual({ host: "ctl.lab.example", port: 443 });
  expect(parseEndpoint("dns:///ctl:9")).toEqual({ host: "ctl", port: 9 });
  expect(parseEndpoint("https://ctl:10")).toEqual({ host: "ctl", port: 10 });
  expect(() => parseEndpoint("ctl:99999")).toThrow("endpoint 'ctl:99999' is not HOST:PORT");
  expect(() => parseEndpoint("")).toThrow(UserError);
});

test("tls.ca takes base64 of a PEM (upstream's form) or the PEM itself; anything else names the key", () => {
  expect(caPem(base64(ca.certPem))).toBe(ca.certPem);
  expect(caPem(ca.certPem)).toBe(ca.certPem);
  expect(() => caPem("bm90IGEgY2VydA==")).toThrow("tls.ca: expected a PEM certificate or base64 of one");
  const broken = ca.certPem.replace(/\n[A-Za-z0-9+/]{20}/, "\n");
  expect(() => caPem(broken, "admin.tls.ca")).toThrow("admin.tls.ca: the certificate cannot be read");
  // At connect time a bad CA is a plain message for the terminal.
  expect(() => tlsConnectOptions("ctl:1", { ca: "garbage" }, {})).toThrow(UserError);
});

test("insecure comes from the config or from JMP_GRPC_INSECURE / JUMPSTARTER_GRPC_INSECURE", () => {
  expect(insecureFromEnv({})).toBe(false);
  expect(insecureFromEnv({ JMP_GRPC_INSECURE: "0" })).toBe(false);
  expect(insecureFromEnv({ JMP_GRPC_INSECURE: "1" })).toBe(true);
  expect(insecureFromEnv({ JUMPSTARTER_GRPC_INSECURE: "1" })).toBe(true);
  const opts = tlsConnectOptions("ctl.lab.example:1", { ca: base64(ca.certPem) }, { JMP_GRPC_INSECURE: "1" });
  expect(opts).toMatchObject({ host: "ctl.lab.example", port: 1, rejectUnauthorized: false, ca: undefined, ALPNProtocols: ["h2"] });
  expect(tlsConnectOptions("127.0.0.1:1", {}, {}).servername).toBeUndefined();
});

test("with the CA from the config the handshake verifies the server, by name or by address, over h2", async () => {
  const byName = tlsConnectOptions(`localhost:${port}`, { ca: base64(ca.certPem) }, {});
  expect(await connect(byName)).toEqual({ authorized: true, alpn: "h2" });
  expect(await connect(tlsConnectOptions(`127.0.0.1:${port}`, { ca: ca.certPem }, {}))).toEqual({ authorized: true, alpn: "h2" });
});

test("without the CA the server is refused; insecure still speaks TLS but takes the chain unverified", async () => {
  await expect(connect(tlsConnectOptions(`localhost:${port}`, {}, {}))).rejects.toThrow(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED/);
  const otherCA = await createCA();
  await expect(connect(tlsConnectOptions(`localhost:${port}`, { ca: otherCA.certPem }, {}))).rejects.toThrow();
  expect(await connect(tlsConnectOptions(`localhost:${port}`, { insecure: true }, {}))).toEqual({ authorized: false, alpn: "h2" });
  expect(await connect(tlsConnectOptions(`localhost:${port}`, { ca: otherCA.certPem }, { JMP_GRPC_INSECURE: "1" }))).toMatchObject({ alpn: "h2" });
});
