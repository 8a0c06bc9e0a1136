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
