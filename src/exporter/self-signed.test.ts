import { afterAll, expect, test } from "bun:test";
import { readFileSync, statSync } from "node:fs";
import * as tls from "node:tls";
import { tempDir } from "../../test/helpers.ts";
import { certNames } from "../common/pki.ts";
import { selfSignedTls } from "./self-signed.ts";

const dir = tempDir("jmp-self-signed-");
afterAll(() => dir.remove());

test("made once and reused: the CA a client was given stays valid across restarts", async () => {
  const first = await selfSignedTls("pi-1", { stateDir: dir.path });
  expect(first.created.map((f) => f.replace(dir.path, "D"))).toEqual(["D/tls/pi-1/ca-key.pem", "D/tls/pi-1/ca.pem", "D/tls/pi-1/server-key.pem", "D/tls/pi-1/server.pem"]);
  expect(statSync(`${dir.path}/tls/pi-1/ca-key.pem`).mode & 0o777).toBe(0o600);
  const again = await selfSignedTls("pi-1", { stateDir: dir.path });
  expect(again.created).toEqual([]);
  expect(again.cert).toBe(first.cert);
  expect(readFileSync(again.caFile, "utf8")).toBe(readFileSync(first.caFile, "utf8"));
});

test("the certificate names this machine and loopback, and a TLS client verifying with the CA accepts it", async () => {
  const t = await selfSignedTls("pi-2", { stateDir: dir.path, listenHost: "lab-pi.example" });
  expect(certNames(t.cert)).toEqual(expect.arrayContaining(["localhost", "127.0.0.1", "lab-pi.example"]));
  const server = tls.createServer({ cert: t.cert, key: t.key }, (s) => s.end("ok"));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  const answer = await new Promise<string>((resolve, reject) => {
    const c = tls.connect({ host: "127.0.0.1", port, ca: readFileSync(t.caFile, "utf8") }, () => c.on("data", (d) => resolve(String(d))));
    c.on("error", reject);
  });
  server.close();
  expect(answer).toBe("ok");
});
