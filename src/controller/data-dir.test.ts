import { afterAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { UserError } from "../common/errors.ts";
import { RouterTokens, TokenAuthority } from "./auth.ts";
import { DATA_FILES, initDataDir } from "./data-dir.ts";
import { certNames, issuedBy } from "../common/pki.ts";

const root = mkdtempSync(join(tmpdir(), "jmp-data-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const snapshot = (dir: string) => Object.fromEntries(Object.values(DATA_FILES).map((f) => [f, readFileSync(join(dir, f), "utf8")]));

test("the first start makes every key and certificate, private to the owner, and they work", async () => {
  const dir = join(root, "first", "data");
  const d = await initDataDir(dir, { hosts: ["ctl.lab.example", "10.0.0.2"] });
  expect(d.created).toEqual(["signing-key.pem", "router-key", "ca-key.pem", "ca.pem", "server-key.pem", "server.pem"].map((f) => join(dir, f)));
  expect(statSync(dir).mode & 0o777).toBe(0o700);
  for (const f of Object.values(DATA_FILES)) expect(statSync(join(dir, f)).mode & 0o777).toBe(0o600);
  expect(d.paths.serverCert).toBe(join(dir, "server.pem"));

  expect(certNames(d.serverCertPem)).toEqual(["localhost", "127.0.0.1", "::1", "ctl.lab.example", "10.0.0.2"]);
  expect(issuedBy(d.serverCertPem, d.caPem)).toBe(true);
  expect(d.serverKeyPem).toBe(readFileSync(d.paths.serverKey, "utf8"));
  const authority = await TokenAuthority.fromPem(d.signingKeyPem);
  const { token } = await authority.issue({ kind: "Admin", namespace: "default", name: "admin", uid: "u1", tokenId: "t1" });
  expect((await authority.verify(token)).name).toBe("admin");
  const router = RouterTokens.fromFile(d.paths.routerKey);
  const grant = await router.verifyRouterToken((await router.issueRouterToken({ namespace: "default", lease: "l1", streamId: "s1" })).token);
  expect(grant.lease).toBe("l1");
  // The router key is a separate secret, not derived from the signing key.
  expect(d.signingKeyPem).not.toContain(d.routerKey.trim());
});

test("later starts reuse everything; changed hosts re-issue only the server certificate", async () => {
  const dir = join(root, "again");
  const first = await initDataDir(dir, { hosts: ["ctl.lab.example"] });
  const before = snapshot(dir);

  const same = await initDataDir(dir, { hosts: ["CTL.lab.example."] });
  expect(same.created).toEqual([]);
  expect(snapshot(dir)).toEqual(before);
  expect(same.serverCertPem).toBe(first.serverCertPem);

  const moved = await initDataDir(dir, { hosts: ["ctl.lab.example", "ctl2.lab.example"] });
  const note = "re-issued for localhost, 127.0.0.1, ::1, ctl.lab.example, ctl2.lab.example";
  expect(moved.created).toEqual([`${join(dir, "server-key.pem")} (${note})`, `${join(dir, "server.pem")} (${note})`]);
  const after = snapshot(dir);
  for (const f of ["signing-key.pem", "router-key", "ca.pem", "ca-key.pem"]) expect(after[f]).toBe(before[f]!);
  expect(after["server.pem"]).not.toBe(before["server.pem"]!);
  expect(issuedBy(moved.serverCertPem, first.caPem)).toBe(true);
  expect(certNames(moved.serverCertPem)).toContain("ctl2.lab.example");

  // Dropping a host is a change too: the certificate names exactly what the controller serves.
  expect((await initDataDir(dir, { hosts: ["ctl.lab.example"] })).created).toHaveLength(2);
});

test("a lost server certificate is simply made again; a new CA forces a new server certificate", async () => {
  const dir = join(root, "lost");
  const first = await initDataDir(dir, { hosts: [] });
  rmSync(join(dir, "server.pem"));
  expect((await initDataDir(dir, { hosts: [] })).created).toEqual([join(dir, "server-key.pem"), join(dir, "server.pem")]);

  rmSync(join(dir, "ca.pem"));
  rmSync(join(dir, "ca-key.pem"));
  const renewed = await initDataDir(dir, { hosts: [] });
  expect(renewed.created.map((c) => c.replace(`${dir}/`, ""))).toEqual([
    "ca-key.pem", "ca.pem",
    "server-key.pem (re-issued: not signed by the current CA, or about to expire)",
    "server.pem (re-issued: not signed by the current CA, or about to expire)",
  ]);
  expect(renewed.caPem).not.toBe(first.caPem);
  expect(issuedBy(renewed.serverCertPem, renewed.caPem)).toBe(true);
  expect(renewed.signingKeyPem).toBe(first.signingKeyPem);
});

test("half a CA is an error that says what to do, never a silent new CA", async () => {
  const dir = join(root, "half");
  await initDataDir(dir, { hosts: [] });
  rmSync(join(dir, "ca-key.pem"));
  const err = await initDataDir(dir, { hosts: [] }).catch((e) => e);
  expect(err).toBeInstanceOf(UserError);
  expect(err.message).toBe(
    `${join(dir, "ca.pem")} exists but ${join(dir, "ca-key.pem")} does not: restore it, or remove both to make a new CA ` +
      "(every client and exporter config then needs the new CA)",
  );
});

test("a bad host name is refused before anything is written", async () => {
  const dir = join(root, "bad-host");
  await expect(initDataDir(dir, { hosts: ["ctl:8082"] })).rejects.toThrow("'ctl:8082' is not a host name");
  expect(existsSync(dir)).toBe(false);
});
