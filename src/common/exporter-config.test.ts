import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync, mkdirSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, UserError } from "./errors.ts";
import {
  deleteExporterConfig, findExporterConfig, listExporterConfigs, loadExporterConfigAlias, parseExporterConfig, writeExporterConfig,
} from "./exporter-config.ts";

const home = mkdtempSync(join(tmpdir(), "jmp-cfg-"));
const env = { JMP_CLIENT_CONFIG_HOME: home };
afterAll(() => rmSync(home, { recursive: true, force: true }));

test("upstream's ExporterConfig shape parses, with children, refs and descriptions", () => {
  const cfg = parseExporterConfig({
    apiVersion: "jumpstarter.dev/v1alpha1",
    kind: "ExporterConfig",
    metadata: { namespace: "lab", name: "pi-1" },
    endpoint: "grpc.example:443",
    token: "t",
    tls: { ca: "", insecure: true },
    grpcConfig: { "grpc.keepalive_time_ms": 20000 },
    motd: "be nice",
    export: {
      power: { type: "jumpstarter_driver_power.driver.MockPower", methods_description: { on: "On!" } },
      board: { children: { serial: { type: "PySerial", config: { url: "loop://" } } } },
      p2: { ref: "power", description: "alias" },
    },
  }, "pi.yaml");
  expect(cfg.metadata).toEqual({ namespace: "lab", name: "pi-1" });
  expect(cfg.grpcOptions).toEqual({ "grpc.keepalive_time_ms": 20000 });
  expect(cfg.export.power).toMatchObject({ kind: "driver", keyPath: "export.power", methodsDescription: { on: "On!" } });
  expect(cfg.export.board).toMatchObject({ kind: "composite", children: { serial: { kind: "driver", keyPath: "export.board.children.serial" } } });
  expect(cfg.export.p2).toMatchObject({ kind: "ref", ref: "power", description: "alias" });
});

test("structural mistakes are ConfigErrors naming file and key", () => {
  const err = (v: unknown) => {
    try {
      parseExporterConfig(v, "x.yaml");
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      return (e as Error).message;
    }
  };
  expect(err({ kind: "ClientConfig" })).toBe('x.yaml: kind: expected one of "ExporterConfig", got string "ClientConfig"');
  expect(err({ export: { p: { ref: "a", type: "MockPower" } } })).toBe("x.yaml: export.p.type: not allowed beside 'ref'");
  expect(err({ export: { "a.b": { type: "MockPower" } } })).toBe("x.yaml: export.\"a.b\": a driver name may hold letters, digits, '_' and '-' only");
  expect(err({ export: { p: { config: { a: 1 } } } })).toBe("x.yaml: export.p.type: missing; 'config' needs a driver type");
});

test("aliases resolve in the user's directory; list, write (0600) and delete", () => {
  expect(() => findExporterConfig("lab", env)).toThrow(UserError);
  const file = writeExporterConfig("lab", { export: { power: { type: "MockPower" } } }, env);
  expect(file).toBe(join(home, "exporters", "lab.yaml"));
  expect(statSync(file).mode & 0o777).toBe(0o600);
  expect(loadExporterConfigAlias("lab", env)).toMatchObject({ alias: "lab", file });
  mkdirSync(join(home, "exporters"), { recursive: true });
  writeFileSync(join(home, "exporters", "notes.txt"), "not a config");
  expect(listExporterConfigs(env).filter((e) => !e.readOnly).map((e) => e.alias)).toEqual(["lab"]);
  expect(() => findExporterConfig("../etc/passwd", env)).toThrow("invalid exporter alias");
  deleteExporterConfig("lab", env);
  expect(() => deleteExporterConfig("lab", env)).toThrow("no exporter config named 'lab'");
});

test("hooks as upstream's schema (script, exec, timeout in whole seconds, onFailure), plus healthCheck with every and/or interval", () => {
  const cfg = parseExporterConfig({
    export: {},
    hooks: {
      beforeLease: { script: "j power on", timeout: 60, onFailure: "endLease" },
      afterLease: { script: "/opt/hooks/off.sh", exec: "/bin/bash" },
      healthCheck: { script: "j power read", every: 5, interval: "10m" },
    },
  }, "x.yaml");
  expect(cfg.hooks).toEqual({
    beforeLease: { script: "j power on", exec: undefined, timeout: 60, onFailure: "endLease" },
    afterLease: { script: "/opt/hooks/off.sh", exec: "/bin/bash", timeout: 120, onFailure: "warn" },
    healthCheck: { script: "j power read", exec: undefined, timeout: 120, onFailure: "endLease", every: 5, interval: 600_000 },
  });
  const err = (hooks: unknown) => {
    try {
      parseExporterConfig({ export: {}, hooks }, "x.yaml");
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      expect((e as ConfigError).exitCode).toBe(2);
      return (e as Error).message;
    }
  };
  expect(err({ beforeLease: { script: "x", onFailure: "end" } })).toBe('x.yaml: hooks.beforeLease.onFailure: expected one of "warn", "endLease", "exit", got string "end"');
  expect(err({ beforeLease: { script: "x", timeout: 1.5 } })).toBe("x.yaml: hooks.beforeLease.timeout: expected an integer of at least 1, got number 1.5");
  expect(err({ afterLease: { timeout: 5 } })).toBe("x.yaml: hooks.afterLease.script: missing; expected a string");
  expect(err({ beforeLeas: { script: "x" } })).toStartWith("x.yaml: hooks.beforeLeas: unknown key (did you mean 'beforeLease'?");
  expect(err({ healthCheck: { script: "x" } })).toBe("x.yaml: hooks.healthCheck: needs 'every' (a number of leases), 'interval' (a duration such as 10m), or both");
  expect(err({ healthCheck: { script: "x", interval: "soon" } })).toStartWith("x.yaml: hooks.healthCheck.interval: 'hooks.healthCheck.interval' must be a duration");
  expect(err({ healthCheck: { script: "x", every: 0 } })).toBe("x.yaml: hooks.healthCheck.every: expected an integer of at least 1, got number 0");
});
