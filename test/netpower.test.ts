/**
 * Network power end to end, as a user runs it: the built dist/jmp, an exporter config
 * in upstream's format, `j power on && j power read` in `jmp shell`, against a
 * simulated Shelly (HTTP), a Tasmota plug behind Debian's mosquitto (mqtt, inside
 * the binary) and PDU outlets behind Debian's snmpd (net-snmp, inside the binary).
 */
import { afterAll, describe, expect, test } from "bun:test";
import { shellyGen2 } from "../drivers/http_power/shelly-sim.ts";
import { RARITAN_SENSOR, snmpdMissing, startPdu, USERS } from "../drivers/snmp/pdu-sim.ts";
import { mosquittoMissing, startMosquitto } from "../drivers/tasmota/mosquitto.ts";
import { tasmotaPlug } from "../drivers/tasmota/plug-sim.ts";
import { eventually } from "../src/api/eventually.ts";
import { jmp, tempDir } from "./helpers.ts";

const dir = tempDir("jmp-netpower-");
afterAll(() => dir.remove());

const config = (name: string, power: string) =>
  dir.file(name, ["apiVersion: jumpstarter.dev/v1alpha1", "kind: ExporterConfig", "metadata:", "  namespace: lab", "  name: bench-7", "export:", "  power:", power, ""].join("\n"));

const shell = (file: string, script: string) => jmp(["shell", "--exporter-config", file, "--", "sh", "-c", script], { timeoutMs: 30_000 });

/** `j power on && j power read` with `file`, which must succeed quietly: what read printed. */
async function powerOnAndRead(file: string): Promise<string> {
  const r = await shell(file, "j power on && j power read");
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  return r.stdout.trim();
}

describe("HttpPower", () => {
  test("a Shelly Gen2 plug with Digest auth: j power on && j power read", async () => {
    const plug = await shellyGen2({ password: "plug-pass" });
    try {
      const file = config("shelly.yaml", [
        "    type: jumpstarter_driver_http_power.driver.HttpPower",
        "    config:",
        "      name: bench-7-plug",
        "      power_on:",
        `        url: "${plug.url}/rpc/Switch.Set?id=0&on=true"`,
        "      power_off:",
        `        url: "${plug.url}/rpc/Switch.Set?id=0&on=false"`,
        "      power_read:",
        `        url: "${plug.url}/rpc/Switch.GetStatus?id=0"`,
        "      auth:",
        "        digest:",
        "          user: admin",
        "          password: plug-pass",
      ].join("\n"));
      // apparent_power is voltage × current as a double, printed as upstream's Python prints it
      expect(await powerOnAndRead(file)).toBe(`voltage=231.4 V  current=0.113 A  apparent_power=${231.4 * 0.113} VA  power=26.1 W`);
      expect(plug.on).toEqual([true]);
    } finally {
      await plug.close();
    }
  });

  test("an unreachable Shelly fails the command with its URL; a bad URL stops the exporter at load", async () => {
    const gone = await shellyGen2();
    await gone.close();
    const file = config("gone.yaml", [
      "    type: HttpPower",
      "    config:",
      "      power_on:",
      `        url: "${gone.url}/relay/0?turn=on"`,
      "      power_off:",
      `        url: "${gone.url}/relay/0?turn=off"`,
    ].join("\n"));
    const r = await shell(file, "j power on");
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`cannot reach Shelly at ${gone.url}/relay/0?turn=on: connection refused`);

    const bad = config("bad.yaml", ["    type: HttpPower", "    config:", "      power_on: {url: shelly.local/relay/0?turn=on}", "      power_off: {url: http://shelly.local/relay/0?turn=off}"].join("\n"));
    const b = await shell(bad, "true");
    expect(b.code).toBe(2);
    expect(b.stderr).toContain(`${bad}: export.power.config.power_on.url: expected an http:// or https:// URL, got "shelly.local/relay/0?turn=on"`);
  });
});

describe.skipIf(Boolean(mosquittoMissing))("TasmotaPower (mqtt inside the binary)", () => {
  test("a plug behind mosquitto, over TLS: j power on && j power read; the session's end switches it off, as upstream", async () => {
    const broker = await startMosquitto({ tls: true });
    const plug = await tasmotaPlug(`mqtt://127.0.0.1:${broker.port}`, { topic: "tasmota_6990F2" });
    try {
      const file = config("tasmota.yaml", [
        "    type: jumpstarter_driver_tasmota.driver.TasmotaPower",
        "    config:",
        "      host: 127.0.0.1",
        `      port: ${broker.tlsPort}`,
        "      tls: true",
        `      ca: ${broker.ca}`,
        "      cmnd_topic: cmnd/tasmota_6990F2/POWER",
        "      stat_topic: stat/tasmota_6990F2/POWER",
      ].join("\n"));
      expect(await powerOnAndRead(file)).toBe("voltage=230 V  current=0.25 A  apparent_power=57.5 VA  power=57 W");
      await eventually(() => expect(plug.commands).toEqual(["POWER ON", "STATUS 10", "POWER OFF"]), { what: "the POWER OFF of the session's end" });
      expect(plug.on).toEqual([false]);
    } finally {
      await plug.close();
      await broker.close();
    }
  });
});

describe.skipIf(Boolean(snmpdMissing))("SNMPServer (net-snmp inside the binary)", () => {
  test("a PDU outlet over SNMPv3 authPriv: j power on && j power read", async () => {
    const pdu = await startPdu({ outlets: 8 });
    try {
      const u = USERS.priv;
      const file = config("pdu.yaml", [
        "    type: jumpstarter_driver_snmp.driver.SNMPServer",
        "    config:",
        "      host: 127.0.0.1",
        `      port: ${pdu.port}`,
        `      user: ${u.user}`,
        "      plug: 5",
        "      oid: 1.3.6.1.4.1.13742.6.4.1.2.1.2.1",
        `      auth_protocol: ${u.auth_protocol}`,
        `      auth_key: ${u.auth_key}`,
        `      priv_protocol: ${u.priv_protocol}`,
        `      priv_key: ${u.priv_key}`,
        `      voltage_oid: ${RARITAN_SENSOR}.5.4`,
        `      current_oid: ${RARITAN_SENSOR}.5.1`,
        "      current_scale: 0.001",
      ].join("\n"));
      expect(await powerOnAndRead(file)).toBe("voltage=230 V  current=1.25 A  apparent_power=287.5 VA");
      expect(pdu.outlets()["5"]).toBe("on");
      expect(pdu.sets()).toEqual([[5, 1]]);
    } finally {
      await pdu.close();
    }
  });
});
