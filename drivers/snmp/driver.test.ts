/** SNMPServer over the wire, against Debian's snmpd with PDU outlets simulated behind it (pdu-outlets.py). */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createSocket } from "node:dgram";
import { parseExporterConfig } from "../../src/common/exporter-config.ts";
import { serve, type Served } from "../../src/testing/serve.ts";
import { PowerClient } from "../power/client.ts";
import { cleanUpAfterEach } from "../testing/cleanup.ts";
import { failure } from "../testing/failure.ts";
import { SNMP_CLIENT, SNMPServer, type SnmpReading } from "./driver.ts";
import { COMMUNITY, type PduSim, RARITAN_SENSOR, RARITAN_SWITCHING, snmpdMissing, startPdu, USERS } from "./pdu-sim.ts";

if (snmpdMissing) console.warn(`SNMPServer agent tests skipped: ${snmpdMissing}`);

const cleanUp = cleanUpAfterEach();

async function power(cfg: Record<string, unknown>): Promise<PowerClient> {
  const served: Served<PowerClient> = await serve<PowerClient>(SNMPServer.create({ host: "127.0.0.1", timeout: 2, ...cfg }));
  cleanUp(() => served.close());
  return served.client;
}

const readAll = (client: PowerClient) => Array.fromAsync(client.read()) as Promise<SnmpReading[]>;

describe.skipIf(Boolean(snmpdMissing))("against snmpd", () => {
  let pdu: PduSim;
  beforeAll(async () => {
    pdu = await startPdu({ outlets: 8 });
  });
  afterAll(async () => pdu?.close());

  test("SNMPv3 authPriv (upstream's SHA and AES): on and off SET the outlet's switchingOperation; upstream's client label", async () => {
    const client = await power({ port: pdu.port, plug: 3, ...USERS.priv });
    expect(client).toBeInstanceOf(PowerClient);
    expect(client.labels["jumpstarter.dev/client"]).toBe(SNMP_CLIENT);
    const before = pdu.sets().length;
    await client.on();
    expect(pdu.outlets()["3"]).toBe("on");
    await client.off();
    expect(pdu.outlets()["3"]).toBe("off");
    expect(pdu.sets().slice(before)).toEqual([[3, 1], [3, 0]]);
    await client.cycle(0);
    expect(pdu.sets().slice(before)).toEqual([[3, 1], [3, 0], [3, 0], [3, 1]]);
    expect(pdu.outlets()["3"]).toBe("on");
  });

  test("SNMPv3 authNoPriv (MD5), noAuthNoPriv, and SNMPv2c with a community", async () => {
    const md5 = await power({ port: pdu.port, plug: 4, ...USERS.auth });
    await md5.on();
    expect(pdu.outlets()["4"]).toBe("on");
    const plain = await power({ port: pdu.port, plug: 5, ...USERS.none });
    await plain.on();
    expect(pdu.outlets()["5"]).toBe("on");
    const v2c = await power({ port: pdu.port, plug: 6, community: COMMUNITY });
    await v2c.on();
    expect(pdu.outlets()["6"]).toBe("on");
    await v2c.off();
    expect(pdu.outlets()["6"]).toBe("off");
  });

  test("read GETs the configured sensor OIDs and scales them", async () => {
    const client = await power({
      port: pdu.port, plug: 7, community: COMMUNITY,
      voltage_oid: `${RARITAN_SENSOR}.7.4`, current_oid: `${RARITAN_SENSOR}.7.1`, current_scale: 0.001, power_oid: `${RARITAN_SENSOR}.7.5`,
    });
    expect(await readAll(client)).toEqual([{ voltage: 230, current: 0, power: 0 }]);
    await client.on();
    expect(await readAll(client)).toEqual([{ voltage: 230, current: 1.25, power: 287 }]);
    const unread = await power({ port: pdu.port, plug: 7, community: COMMUNITY });
    const e = await failure(readAll(unread));
    expect(e.name).toBe("NotImplementedDriverError");
    expect(e.message).toBe(`read: outlet 7 of the PDU at udp://127.0.0.1:${pdu.port} has nothing to read: set voltage_oid, current_oid or power_oid (the PDU's sensor OIDs for this outlet)`);
  });

  test("what the agent refuses is said with the PDU, the outlet and the OID", async () => {
    const url = `udp://127.0.0.1:${pdu.port}`;
    const noOutlet = await failure((await power({ port: pdu.port, plug: 42, community: COMMUNITY })).on());
    expect(noOutlet.message).toBe(
      `on: the PDU at ${url} refused to switch outlet 42 on (${RARITAN_SWITCHING}.42): NotWritable; check oid and plug (outlet 42 is ${RARITAN_SWITCHING}.42)`,
    );
    const badValue = await failure((await power({ port: pdu.port, plug: 2, community: COMMUNITY, on_value: 9 })).on());
    expect(badValue.message).toBe(`on: the PDU at ${url} refused to switch outlet 2 on (${RARITAN_SWITCHING}.2): WrongValue; check oid and plug (outlet 2 is ${RARITAN_SWITCHING}.2), and on_value/off_value`);
    const wrongKey = await failure((await power({ port: pdu.port, plug: 2, ...USERS.priv, auth_key: "not-the-key" })).on());
    expect(wrongKey.message).toBe(
      `on: the PDU at ${url} refused SNMPv3 user labuser: Wrong Digest (incorrect password, community or key); check user labuser, auth_protocol/auth_key and priv_protocol/priv_key`,
    );
    const stranger = await failure((await power({ port: pdu.port, plug: 2, user: "nobody" })).on());
    expect(stranger.message).toStartWith(`on: the PDU at ${url} refused SNMPv3 user nobody: Unknown User Name;`);
    // An agent drops a v2c request with a community it does not know: a wrong community looks like silence.
    const started = performance.now();
    const community = await failure((await power({ port: pdu.port, plug: 2, community: "guess", timeout: 0.4 })).on());
    expect(performance.now() - started).toBeLessThan(3000);
    expect(community.name).toBe("DeadlineExceededError");
    expect(community.message).toBe(
      `on: the PDU at ${url} did not answer (switch outlet 2 on) within 0.4 s: check host and port, and the community (an SNMP agent ignores requests it cannot authenticate)`,
    );
    expect(pdu.outlets()["2"]).toBe("off");
  });
});

test("a PDU that is not there: no answer within the timeout, or a host that does not resolve", async () => {
  const silent = createSocket("udp4");
  await new Promise<void>((r) => silent.bind(0, "127.0.0.1", r));
  cleanUp(() => new Promise<void>((r) => silent.close(() => r())));
  const port = silent.address().port;
  const started = performance.now();
  const e = await failure((await power({ port, plug: 1, ...USERS.priv, timeout: 0.3 })).off());
  expect(performance.now() - started).toBeLessThan(3000);
  expect(e.name).toBe("DeadlineExceededError");
  expect(e.message).toBe(
    `off: the PDU at udp://127.0.0.1:${port} did not answer (switch outlet 1 off) within 0.3 s: check host and port, and user labuser, auth_protocol/auth_key and priv_protocol/priv_key (an SNMP agent ignores requests it cannot authenticate)`,
  );
  const nowhere = await failure((await power({ host: "pdu.invalid", plug: 1, community: "public" })).on());
  expect(nowhere.name).toBe("UnavailableError");
  expect(nowhere.message).toBe("on: cannot reach the PDU at udp://pdu.invalid:161: host not found");
});

test("upstream's example config loads; mistakes are reported at load, naming the key", async () => {
  const tree = (config: Record<string, unknown>) => parseExporterConfig({ export: { power: { type: "jumpstarter_driver_snmp.driver.SNMPServer", config } } }, "lab.yaml");
  const upstream = { host: "pdu.mgmt.com", user: "labuser", plug: 32, port: 161, oid: "1.3.6.1.4.1.13742.6.4.1.2.1.2.1", auth_protocol: "NONE", auth_key: null, priv_protocol: "NONE", priv_key: null, timeout: 5.0 };
  const served = await serve(tree(upstream));
  cleanUp(() => served.close());
  expect(served.client.children.power!.labels["jumpstarter.dev/client"]).toBe(SNMP_CLIENT);

  const attempt = async (config: Record<string, unknown>) => (await failure(serve(tree(config)))).message;
  const base = { host: "pdu", plug: 1 };
  expect(await attempt({ ...base, user: "u", oid: "1.3.6.1.x" })).toBe('lab.yaml: export.power.config.oid: expected a numeric OID such as 1.3.6.1.4.1.13742.6.4.1.2.1.2.1, got "1.3.6.1.x"');
  expect(await attempt({ ...base, user: "u", oid: "4.3.6" })).toStartWith("lab.yaml: export.power.config.oid: expected a numeric OID");
  expect(await attempt({ ...base, community: "c", voltage_oid: "voltage" })).toStartWith("lab.yaml: export.power.config.voltage_oid: expected a numeric OID");
  expect(await attempt({ host: "pdu", user: "u" })).toBe("lab.yaml: export.power.config.plug: missing; expected an integer from 0 to 4294967295");
  expect(await attempt(base)).toBe("lab.yaml: export.power.config: user: missing; give user (SNMPv3, as upstream) or community (SNMPv2c)");
  expect(await attempt({ ...base, user: "u", community: "c" })).toBe("lab.yaml: export.power.config: community: give user (SNMPv3) or community (SNMPv2c), not both");
  expect(await attempt({ ...base, user: "u", auth_protocol: "SHA" })).toBe("lab.yaml: export.power.config: auth_key: missing; auth_protocol SHA needs it");
  expect(await attempt({ ...base, user: "u", auth_protocol: "SHA", auth_key: "short" })).toBe("lab.yaml: export.power.config: auth_key: SNMPv3 pass phrases have 8 characters or more, got 5");
  expect(await attempt({ ...base, user: "u", priv_protocol: "AES", priv_key: "12345678" })).toBe("lab.yaml: export.power.config: priv_protocol: privacy needs authentication: set auth_protocol and auth_key too");
  expect(await attempt({ ...base, user: "u", auth_key: "12345678" })).toBe("lab.yaml: export.power.config: auth_key: given, but auth_protocol is NONE; set auth_protocol too");
  expect(await attempt({ ...base, community: "c", auth_protocol: "MD5", auth_key: "12345678" })).toBe("lab.yaml: export.power.config: auth_protocol: SNMPv2c (community) has no authentication; use user for SNMPv3");
  expect(await attempt({ ...base, user: "u", auth_protocol: "SHA1" })).toBe(
    'lab.yaml: export.power.config.auth_protocol: expected one of "NONE", "MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512", got string "SHA1"',
  );
});
