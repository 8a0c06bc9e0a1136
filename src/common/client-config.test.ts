import { afterAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
import {
  clientConfigFromEnv, currentClient, deleteClientConfig, listClientConfigs, loadAdminConfig, loadClientConfig, parseClientConfig,
  resolveClientConfig, useClientConfig, writeAdminConfig, writeClientConfig,
} from "./client-config.ts";
import { ConfigError, UserError } from "./errors.ts";

const root = mkdtempSync(join(tmpdir(), "jmp-client-cfg-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
/** A fresh, empty config home per test. */
function home(): NodeJS.ProcessEnv {
  return { JMP_CLIENT_CONFIG_HOME: join(root, `home-${++n}`) };
}

// A real self-signed P-256 certificate: configs check that tls.ca can be read.
const CA_PEM = `-----BEGIN CERTIFICATE-----
MIIBgDCCASegAwIBAgIUITC2x7gAC6MXAeEo02XeT1C032wwCgYIKoZIzj0EAwIw
FTETMBEGA1UEAwwKZml4dHVyZSBDQTAgFw0yNjExMjgwNjIxMDVaGA8yMTI2MTEw
NDA2MjEwNVowFTETMBEGA1UEAwwKZml4dHVyZSBDQTBZMBMGByqGSM49AgEGCCqG
SM49AwEHA0IABPWV5j6tgJbCQGvK7lzSNMPApjlzdpVnjYrvJBBFoQ7gE7julwWX
3rV3GhB+3bFZwokFqXvUhQ5EuyBSDauHaNWjUzBRMB0GA1UdDgQWBBRYh7bITKZC
ucvSWdAiMIeh1sPAZDAfBgNVHSMEGDAWgBRYh7bITKZCucvSWdAiMIeh1sPAZDAP
BgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0cAMEQCIHmndajNdKBCJVV2xG1r
nVJ3yesYgwQ5UvtD/T6V9OJ9AiBl1Ku+t9NTTcgtytBYkcr3K+RhEIuE8mlCjejP
qLjnxw==
-----END CERTIFICATE-----
`;
const CA_B64 = Buffer.from(CA_PEM).toString("base64");
// An unsigned JWT is enough where only the subject is read.
const jwt = (sub: string) => `e30.${Buffer.from(JSON.stringify({ sub })).toString("base64url")}.sig`;

function message(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error("expected an error");
}

test("upstream's ClientConfig parses, with defaults for what it leaves out", () => {
  const cfg = parseClientConfig({
    apiVersion: "jumpstarter.dev/v1alpha1",
    kind: "ClientConfig",
    metadata: { namespace: "default", name: "testclient" },
    endpoint: "jumpstarter.my-lab.com:1443",
    token: "dGhpc2lzYXRva2Vu",
    tls: { ca: CA_B64, insecure: false },
    grpcOptions: { "grpc.keepalive_time_ms": 20000 },
    drivers: { allow: ["jumpstarter.drivers.*", "vendorpackage.*"] },
  }, "alice.yaml");
  expect(cfg).toMatchObject({
    metadata: { namespace: "default", name: "testclient" },
    endpoint: "jumpstarter.my-lab.com:1443",
    tls: { ca: CA_B64, insecure: false },
    drivers: { allow: ["jumpstarter.drivers.*", "vendorpackage.*"], unsafe: false },
    shell: { use_profiles: false },
    leases: { acquisition_timeout: 7200, dial_timeout: 60, retry_timeout: 300 },
    file: "alice.yaml",
  });
  const minimal = parseClientConfig({ endpoint: "e:1", tls: { ca: "" }, drivers: { allow: "a.*, UNSAFE" } }, "m.yaml");
  expect(minimal.tls.ca).toBeUndefined();
  expect(minimal.drivers).toEqual({ allow: ["a.*", "UNSAFE"], unsafe: true });
});

test("mistakes are ConfigErrors naming the file and the key", () => {
  const err = (v: unknown) => {
    try {
      parseClientConfig(v, "c.yaml");
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      return (e as Error).message;
    }
  };
  expect(err({ kind: "ExporterConfig" })).toBe('c.yaml: kind: expected one of "ClientConfig", got string "ExporterConfig"');
  expect(err({ endpiont: "e:1" })).toStartWith("c.yaml: endpiont: unknown key (did you mean 'endpoint'?");
  expect(err({ leases: { acquisition_timeout: 2 } })).toBe("c.yaml: leases.acquisition_timeout: expected an integer of at least 5, got number 2");
  expect(err({ tls: { insecure: "yes" } })).toBe('c.yaml: tls.insecure: expected true or false, got string "yes"');
  expect(err(null)).toBe("c.yaml: the file is empty; expected a ClientConfig mapping");
  expect(err({ tls: { ca: "bm90IGEgY2VydA==" } })).toBe("c.yaml: tls.ca: expected a PEM certificate or base64 of one");
  // A plain PEM is accepted too, and kept as written.
  expect(parseClientConfig({ tls: { ca: CA_PEM } }, "c.yaml").tls.ca).toBe(CA_PEM);
});

test("write (0600, the first becomes current), list, use and delete (which clears current)", () => {
  const env = home();
  const file = writeClientConfig("alice", { metadata: { namespace: "lab", name: "alice" }, endpoint: "ctl:8082", token: "t1", tls: { ca: CA_B64, insecure: false } }, env);
  expect(file).toBe(join(env.JMP_CLIENT_CONFIG_HOME!, "clients", "alice.yaml"));
  expect(statSync(file).mode & 0o777).toBe(0o600);
  // The layout upstream's jmp writes, so either tool reads the other's files.
  expect(parse(readFileSync(file, "utf8"))).toEqual({
    apiVersion: "jumpstarter.dev/v1alpha1", kind: "ClientConfig", metadata: { namespace: "lab", name: "alice" }, endpoint: "ctl:8082",
    tls: { ca: CA_B64, insecure: false }, token: "t1", grpcOptions: {}, drivers: { allow: [], unsafe: false }, shell: { use_profiles: false },
  });
  expect(currentClient(env)).toBe("alice");

  writeClientConfig("bob", { endpoint: "other:443", token: "t2", leases: { acquisition_timeout: 60, dial_timeout: 60, retry_timeout: 300 } }, env);
  expect(currentClient(env)).toBe("alice");
  expect(loadClientConfig("bob", env).leases.acquisition_timeout).toBe(60);
  writeFileSync(join(env.JMP_CLIENT_CONFIG_HOME!, "clients", "broken.yaml"), "kind: [");
  expect(listClientConfigs(env)).toMatchObject([
    { alias: "alice", endpoint: "ctl:8082", current: true },
    { alias: "bob", endpoint: "other:443", current: false },
    { alias: "broken", current: false, error: expect.stringContaining("invalid YAML") },
  ]);

  useClientConfig("bob", env);
  expect(currentClient(env)).toBe("bob");
  expect(message(() => useClientConfig("carol", env))).toStartWith("no client config named 'carol'");
  expect(message(() => useClientConfig("carol", env))).toContain("known clients: alice, bob, broken");
  deleteClientConfig("bob", env);
  expect(currentClient(env)).toBeUndefined();
  expect(() => deleteClientConfig("bob", env)).toThrow("no client config named 'bob'");
  expect(() => writeClientConfig("../x", { endpoint: "e:1", token: "t" }, env)).toThrow("invalid client alias");
});

test("the user config keeps keys it does not know and names a bad current-client", () => {
  const env = home();
  mkdirSync(env.JMP_CLIENT_CONFIG_HOME!, { recursive: true });
  const userFile = join(env.JMP_CLIENT_CONFIG_HOME!, "config.yaml");
  writeFileSync(userFile, "apiVersion: jumpstarter.dev/v1alpha1\nkind: UserConfig\nconfig:\n  current-client: null\n  theme: dark\n");
  writeClientConfig("alice", { endpoint: "e:1", token: "t" }, env);
  expect(parse(readFileSync(userFile, "utf8")).config).toEqual({ "current-client": "alice", theme: "dark" });
  writeFileSync(userFile, "config:\n  current-client: [a]\n");
  expect(message(() => currentClient(env))).toBe(`${userFile}: config.current-client: expected a string, got a list`);
});

test("the environment makes a config from JMP_ENDPOINT and JMP_TOKEN, or none", () => {
  expect(clientConfigFromEnv({})).toBeUndefined();
  expect(clientConfigFromEnv({ JMP_ENDPOINT: "ctl:8082", JMP_TOKEN: "t", JMP_NAMESPACE: "lab", JMP_NAME: "ci", JMP_DRIVERS_ALLOW: "a.*,b.*" })).toMatchObject({
    endpoint: "ctl:8082", token: "t", metadata: { namespace: "lab", name: "ci" }, drivers: { allow: ["a.*", "b.*"], unsafe: false }, file: "<environment>",
  });
  expect(message(() => clientConfigFromEnv({ JMP_ENDPOINT: "ctl:8082" }))).toBe(
    "JMP_ENDPOINT is set but JMP_TOKEN is not: set both to use a client config from the environment",
  );
});

test("resolution follows upstream: a flag, else the environment, else the current client", () => {
  const env = home();
  expect(message(() => resolveClientConfig({}, env))).toStartWith("no client config: pass --client ALIAS or --client-config FILE, set JMP_ENDPOINT and JMP_TOKEN");
  writeClientConfig("alice", { metadata: { namespace: "lab", name: "alice" }, endpoint: "ctl:1", token: "ta" }, env);
  const other = join(root, `other-${n}.yaml`);
  writeFileSync(other, "endpoint: file:3\ntoken: tf\nmetadata: {namespace: lab, name: f}\n");
  const withEnv = { ...env, JMP_ENDPOINT: "env:2", JMP_TOKEN: "te", JMP_NAMESPACE: "lab", JMP_NAME: "e" };

  expect(resolveClientConfig({}, env).endpoint).toBe("ctl:1");
  expect(resolveClientConfig({}, withEnv).endpoint).toBe("env:2");
  expect(resolveClientConfig({ client: "alice" }, withEnv).endpoint).toBe("ctl:1");
  expect(resolveClientConfig({ clientConfig: other }, withEnv)).toMatchObject({ endpoint: "file:3", alias: `other-${n}` });
  expect(message(() => resolveClientConfig({ client: "alice", clientConfig: other }, env))).toBe("give either --client or --client-config, not both");

  rmSync(join(env.JMP_CLIENT_CONFIG_HOME!, "clients", "alice.yaml"));
  expect(message(() => resolveClientConfig({}, env))).toStartWith("the current client 'alice' has no config file");
});

test("a config without endpoint or token is named; a missing namespace or name comes from the token", () => {
  const file = join(root, "no-token.yaml");
  writeFileSync(file, "endpoint: ctl:1\n");
  const e = (() => {
    try {
      resolveClientConfig({ clientConfig: file }, {});
    } catch (err) {
      return err;
    }
  })();
  expect(e).toBeInstanceOf(ConfigError);
  expect((e as Error).message).toBe(`${file}: token: missing; ask your admin for this client's token`);

  const fromToken = resolveClientConfig({}, { JMP_ENDPOINT: "ctl:1", JMP_TOKEN: jwt("client:lab:alice:uid-1") });
  expect(fromToken.metadata).toEqual({ namespace: "lab", name: "alice" });
  const explicit = resolveClientConfig({}, { JMP_ENDPOINT: "ctl:1", JMP_TOKEN: jwt("client:lab:alice:u"), JMP_NAME: "al" });
  expect(explicit.metadata).toEqual({ namespace: "lab", name: "al" });
  expect(resolveClientConfig({}, { JMP_ENDPOINT: "ctl:1", JMP_TOKEN: "opaque" }).metadata).toEqual({ namespace: undefined, name: undefined });
});

test("the admin credential: --admin-config, else JMP_ADMIN_CONFIG, else <data-dir>/admin.yaml", () => {
  const dataDir = join(root, "data");
  const inData = join(dataDir, "admin.yaml");
  writeAdminConfig(inData, { endpoint: "ctl:8082", token: "admin-token", tls: { ca: CA_B64, insecure: false } });
  expect(statSync(inData).mode & 0o777).toBe(0o600);
  expect(loadAdminConfig({}, {}, dataDir)).toMatchObject({ endpoint: "ctl:8082", token: "admin-token", tls: { ca: CA_B64 }, file: inData });

  const viaEnv = join(root, "env-admin.yaml");
  writeAdminConfig(viaEnv, { endpoint: "env:1", token: "t" });
  const viaFlag = join(root, "flag-admin.yaml");
  writeAdminConfig(viaFlag, { endpoint: "flag:1", token: "t" });
  expect(loadAdminConfig({}, { JMP_ADMIN_CONFIG: viaEnv }, dataDir).endpoint).toBe("env:1");
  expect(loadAdminConfig({ adminConfig: viaFlag }, { JMP_ADMIN_CONFIG: viaEnv }, dataDir).endpoint).toBe("flag:1");

  expect(message(() => loadAdminConfig({}, {}))).toStartWith("no admin credential: pass --admin-config FILE or set JMP_ADMIN_CONFIG");
  expect(() => loadAdminConfig({}, {}, join(root, "nowhere"))).toThrow(UserError);
  writeFileSync(viaEnv, "kind: ClientConfig\nendpoint: e:1\ntoken: t\n");
  expect(message(() => loadAdminConfig({}, { JMP_ADMIN_CONFIG: viaEnv }))).toBe(`${viaEnv}: kind: expected one of "AdminConfig", got string "ClientConfig"`);
});

test("a config copied in by hand, the only one, is used without 'config client use'; with two, the message names them", () => {
  const env = home();
  const dir = join(env.JMP_CLIENT_CONFIG_HOME!, "clients");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "alice.yaml"), "endpoint: ctl:1\ntoken: ta\nmetadata: {namespace: lab, name: alice}\n");
  expect(resolveClientConfig({}, env)).toMatchObject({ endpoint: "ctl:1", alias: "alice" });
  writeFileSync(join(dir, "bob.yaml"), "endpoint: ctl:2\ntoken: tb\nmetadata: {namespace: lab, name: bob}\n");
  expect(message(() => resolveClientConfig({}, env))).toContain("pick the current client with 'jmp config client use ALIAS' (there are alice, bob)");
});

test("an endpoint that is not HOST:PORT (blank, a path, a bad port) is the file's mistake, named at load", () => {
  for (const endpoint of ["  ", "ctl:99999", "a/b"]) {
    const file = join(root, "bad-endpoint.yaml");
    writeFileSync(file, `apiVersion: jumpstarter.dev/v1alpha1\nkind: ClientConfig\nendpoint: "${endpoint}"\ntoken: t\n`);
    expect(() => resolveClientConfig({ clientConfig: file })).toThrow(`${file}: endpoint: expected the controller's HOST:PORT, got '${endpoint}'`);
  }
});
