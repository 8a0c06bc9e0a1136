/**
 * Scenario 2: network faults between the roles, through two fault proxies
 * (chaos/proxy.ts): one between the exporter and the controller (its config names
 * the proxy), one between the clients and the controller with its embedded router
 * (the controller advertises the proxy, so Dial hands it out, to the exporter's
 * router streams too).
 *
 * - resets of the exporter's connection: it registers again within 5 s;
 * - the exporter cut off (its connections reset, new ones stalled) for longer than the
 *   reconnect grace: it reads offline and OFFLINE within the grace, and comes back;
 * - the controller away for a while: the exporter is back within 5 s of its return;
 * - a pulled cable (both proxies black-hole their connections, closes included):
 *   each end notices by itself within ~10 s, and the next call works;
 * - a running `jmp shell` whose two `j power on` are separated by a reset of its
 *   connections, by a controller restart, or slowed by 200 ms each way, succeeds;
 * - a byte stream cut mid-transfer fails (no hang), and the next one works;
 * - throughout, `jmp admin get exporters` never shows the exporter offline while its
 *   status is not OFFLINE (a reading between the grace's end and its timer did).
 */
import { readFileSync, writeFileSync } from "node:fs";
import { parse, stringify } from "yaml";
import { registerBuiltinClients } from "../drivers/catalog.ts";
import { NetworkClient } from "../drivers/network/client.ts";
import { PowerClient } from "../drivers/power/client.ts";
import { openController } from "../src/client/controller.ts";
import { acquireSession, type LeasedSession } from "../src/client/leased-session.ts";
import { ClientRegistry } from "../src/driver/registry.ts";
import type { Lab, Proc } from "../test/distributed/lab.ts";
import { bounded, closeLab, type Options, pause, type Row, row, say, stackLines, startLab, stopController } from "./lib.ts";
import { FaultProxy } from "./proxy.ts";

/** "An exporter is back within 5 s of the controller returning" (issue 11). */
const BACK_WITHIN_MS = 5_000;
/** "A paused connection is noticed within ~10 s by both sides": PING interval + timeout, and a loaded machine. */
const NOTICED_WITHIN_MS = 12_000;
/** The controller's keepalive (src/controller/server.ts): a PING every 5 s, 5 s to answer, 20 s on router-stream connections. */
const CONTROLLER_PING_INTERVAL_MS = 5_000;
const CONTROLLER_BULK_TIMEOUT_MS = 20_000;
/** What a loaded machine may add to a timer. */
const SLACK_MS = 3_000;
/** The controller's reconnect grace (src/controller/state.ts): a closed Status stream reads offline this long after. */
const RECONNECT_GRACE_MS = 5_000;
/** Longer than the grace, so the exporter is marked OFFLINE while it is cut off. */
const CUT_OFF_MS = 8_000;
/** Its stalled attempt gives up by its own keepalive, then it tries again. */
const BACK_AFTER_CUT_MS = 15_000;
/** A call or stream on a cut path settles (fails or works) within this: no hang. */
const SETTLES_WITHIN_MS = 15_000;
const MiB = 2 ** 20;

/** Registers `name` with power and echo drivers, reaching the controller through `endpoint`. */
async function addExporter(lab: Lab, name: string, endpoint: string): Promise<Proc> {
  const file = await lab.addExporter(name, { board: "net" });
  const doc = parse(readFileSync(file, "utf8")) as Record<string, unknown>;
  doc.endpoint = endpoint;
  doc.export = {
    power: { type: "jumpstarter_driver_power.driver.MockPower" },
    echo: { type: "jumpstarter_driver_network.driver.EchoNetwork" },
  };
  writeFileSync(file, stringify(doc));
  return lab.runExporter(name);
}

/**
 * Reads the exporters as an admin does, once a second until stopped; a reading that
 * says offline with a status other than OFFLINE is a problem of `row` (calls that fail
 * while the controller is away are not: other rows judge those).
 */
function watchOfflineMarked(lab: Lab, into: Row): { stop(): Promise<void> } {
  let stopped = false;
  const count = { readings: 0, offline: 0, unmarked: 0 };
  const loop = (async () => {
    while (!stopped) {
      const read = await lab.adminExporters().catch(() => []);
      for (const e of read) {
        count.readings++;
        if (e.online) continue;
        count.offline++;
        if (e.status === "OFFLINE") continue;
        if (count.unmarked++ === 0) into.problems.push(`controller: exporter ${e.name} read offline with status ${e.status}, not OFFLINE`);
      }
      await pause(1_000);
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      into.notes.push(`admin readings of the exporter: ${count.readings}, offline ${count.offline}, of which not marked OFFLINE ${count.unmarked}`);
    },
  };
}

/** When (performance.now) `p` next says `pattern` after line `from`, or undefined if it does not within `ms`. */
async function lineAt(p: Proc, pattern: RegExp, from: number, ms: number): Promise<number | undefined> {
  try {
    return p.lines[await p.waitLine(pattern, { from, timeoutMs: ms })]!.at;
  } catch {
    return undefined;
  }
}

/** Echoes `bytes` through a fresh stream of the session's echo driver; resolves to how many came back. */
async function echo(session: LeasedSession, bytes: number, onProgress?: (echoed: number) => void): Promise<number> {
  const stream = await session.session.root.child("echo", NetworkClient).connect();
  const writer = stream.writable.getWriter();
  const chunk = new Uint8Array(64 * 1024).fill(7);
  const writing = (async () => {
    for (let sent = 0; sent < bytes; sent += chunk.length) await writer.write(chunk);
    await writer.close();
  })();
  writing.catch(() => {});
  let got = 0;
  for await (const c of stream.readable) {
    got += c.length;
    onProgress?.(got);
    if (got >= bytes) break;
  }
  await writing;
  return got;
}

export async function networkFaults(opts: Options, rows: Row[]): Promise<void> {
  const rounds = opts.quick ? 3 : 20;
  // 19 s and more: retries that doubled up to 30 s (before) came 6 s or more after the return.
  const outages = opts.quick ? [9_000] : [3_000, 9_000, 19_000, 45_000];
  const resets = row(`network: exporter ↔ controller reset ×${rounds}`, rows);
  const cutOff = row(`network: exporter cut off ${CUT_OFF_MS / 1000} s, read OFFLINE, then back`, rows);
  const away = row(`network: controller away ${outages.map((o) => `${o / 1000} s`).join(", ")}`, rows);
  const shells = row("network: jmp shell across a reset, a restart, 200 ms delay", rows);
  const stream = row("network: byte stream cut mid-transfer", rows);
  const cable = row("network: pulled cable (black hole), each end notices", rows);
  let toClients: FaultProxy | undefined;
  let toExporters: FaultProxy | undefined;
  const lab = await startLab(opts, {
    beforeController: async (l) => {
      toClients = await FaultProxy.start("client ↔ controller/router", l.endpoint);
      toExporters = await FaultProxy.start("exporter ↔ controller", l.endpoint);
      l.advertise = toClients.endpoint;
    },
  });
  const viaClients = toClients!;
  const viaExporters = toExporters!;
  const env = { ...process.env, ...lab.env };
  let leased: LeasedSession | undefined;
  const connection = { current: undefined as ReturnType<typeof openController> | undefined };
  const stacks: string[] = [];
  let watching: { stop(): Promise<void> } | undefined;
  const restart = async (signal: NodeJS.Signals, downMs = 0) => {
    stacks.push(...(await stopController(lab, signal)).stack);
    await pause(downMs);
    await lab.startController();
  };
  try {
    await lab.addClient("user");
    const exporter = await addExporter(lab, "net-1", viaExporters.endpoint);
    const registered = /registered as default\/net-1/;
    watching = watchOfflineMarked(lab, cutOff);

    for (let i = 0; i < rounds; i++) {
      const mark = exporter.lines.length;
      const t0 = performance.now();
      const n = viaExporters.reset();
      const at = await lineAt(exporter, registered, mark, 30_000);
      if (at === undefined) resets.problems.push(`reset ${i + 1} (${n} connections): the exporter did not register again within 30 s`);
      else {
        resets.recoveryMs.push(at - t0);
        if (at - t0 > BACK_WITHIN_MS) resets.problems.push(`reset ${i + 1}: the exporter registered again only after ${((at - t0) / 1000).toFixed(1)} s`);
      }
      await pause(300 + Math.random() * 700);
    }
    resets.faults = viaExporters.faults;
    say(opts, `resets: exporter back after ${resets.recoveryMs.map((m) => Math.round(m)).join(", ")} ms`);

    // Cut off longer than the reconnect grace: its connections reset, new ones stalled.
    {
      const mark = exporter.lines.length;
      const before = viaExporters.faults;
      viaExporters.pause();
      viaExporters.reset();
      const t0 = performance.now();
      let offlineMs: number | undefined;
      try {
        const seen = await lab.exporterUntil("net-1", (e) => !e.online, "to read offline", RECONNECT_GRACE_MS + SLACK_MS + 5_000);
        offlineMs = performance.now() - t0;
        if (seen.status !== "OFFLINE") cutOff.problems.push(`controller: exporter net-1 read offline with status ${seen.status}, not OFFLINE`);
        if (offlineMs > RECONNECT_GRACE_MS + SLACK_MS) cutOff.problems.push(`controller: exporter net-1 read offline only ${(offlineMs / 1000).toFixed(1)} s after its connection was reset`);
      } catch (err) {
        cutOff.problems.push(`controller: ${(err as Error).message.split("\n")[0]}`);
      }
      await pause(Math.max(0, CUT_OFF_MS - (performance.now() - t0)));
      viaExporters.heal();
      const healed = performance.now();
      const at = await lineAt(exporter, registered, mark, 60_000);
      if (at === undefined) cutOff.problems.push("the exporter did not register again within 60 s of the link's return");
      else {
        cutOff.recoveryMs.push(at - healed);
        cutOff.notes.push(`read offline ${offlineMs === undefined ? "never" : `${Math.round(offlineMs)} ms after the reset`}; registered again ${Math.round(at - healed)} ms after the link came back`);
        if (at - healed > BACK_AFTER_CUT_MS) cutOff.problems.push(`the exporter registered again only ${((at - healed) / 1000).toFixed(1)} s after the link came back (limit ${BACK_AFTER_CUT_MS / 1000} s)`);
      }
      cutOff.faults = viaExporters.faults - before;
    }

    for (const [i, ms] of outages.entries()) {
      const mark = exporter.lines.length;
      const signal = i % 2 === 0 ? "SIGKILL" : "SIGTERM";
      away.faults++;
      await restart(signal, ms);
      const listening = performance.now();
      const at = await lineAt(exporter, registered, mark, 60_000);
      if (at === undefined) away.problems.push(`away ${ms / 1000} s (${signal}): the exporter did not register again within 60 s of the controller's return`);
      else {
        away.recoveryMs.push(at - listening);
        if (at - listening > BACK_WITHIN_MS) away.problems.push(`away ${ms / 1000} s (${signal}): the exporter registered ${((at - listening) / 1000).toFixed(1)} s after the controller was back (limit ${BACK_WITHIN_MS / 1000} s)`);
      }
      say(opts, `controller away ${ms / 1000} s: exporter back ${at === undefined ? "never" : `${Math.round(at - listening)} ms`} after its return`);
    }

    // A shell that calls the board twice; between the calls, its paths break.
    const twoCalls = async (what: string, between: () => Promise<void>, during?: () => void) => {
      during?.();
      const p = lab.spawn(`jmp shell (${what})`, ["shell", "-l", "board=net", "--client", "user", "--", "sh", "-c", "j power on && echo first-call-done && sleep 2 && j power on && echo second-call-done"]);
      try {
        await p.waitLine("first-call-done", { timeoutMs: 60_000 });
        const t0 = performance.now();
        await between();
        const code = await p.exited(60_000);
        const done = p.lines.find((l) => l.text.includes("second-call-done"));
        if (code !== 0 || !done) shells.problems.push(`${what}: jmp shell exited with ${code}: ${p.lines.map((l) => l.text).filter(Boolean).slice(-3).join(" / ")}`);
        else shells.recoveryMs.push(done.at - t0);
        const stack = stackLines(p.output);
        if (stack.length) shells.problems.push(`${what}: jmp shell printed a stack trace: ${stack[0]!.trim()}`);
      } catch (e) {
        shells.problems.push(`${what}: ${(e as Error).message.split("\n")[0]}`);
      } finally {
        viaClients.heal();
        await p.stop().catch(() => {});
        lab.procs.delete(p);
      }
    };
    await twoCalls("its connections reset", async () => {
      viaClients.reset();
    });
    for (const signal of ["SIGTERM", "SIGKILL"] as const) {
      await twoCalls(`the controller restarted (${signal})`, async () => {
        shells.faults++;
        await restart(signal);
      });
    }
    await twoCalls("200 ms each way", async () => {}, () => viaClients.delay(200));
    shells.faults += viaClients.faults;
    const counted = viaClients.faults;

    const registry = registerBuiltinClients(new ClientRegistry());
    connection.current = openController({ client: "user", env });
    const c = connection.current;
    leased = await acquireSession(c, c.config, registry, { selector: "board=net", durationMs: 10 * 60_000 }, { timeoutMs: 60_000 });
    const session = leased;

    // Mid-stream: reset every client-side connection once 2 MiB have come back.
    try {
      let cut = 0;
      const t = await bounded("the cut stream", SETTLES_WITHIN_MS + 30_000, async () => {
        const outcome = await echo(session, 64 * MiB, (got) => {
          if (!cut && got >= 2 * MiB) {
            cut = performance.now();
            viaClients.reset();
          }
        }).then((got) => `ended after ${got} bytes`, (e: Error) => `failed: ${e.message}`);
        return { outcome, ms: performance.now() - cut };
      });
      if (!cut) stream.problems.push(`the stream ${t.outcome} before it could be cut`);
      else if (t.ms > SETTLES_WITHIN_MS) stream.problems.push(`the cut stream took ${(t.ms / 1000).toFixed(1)} s to settle (${t.outcome})`);
      else if (/ended after 67108864 bytes/.test(t.outcome)) stream.problems.push("the cut stream carried on as if nothing happened (was it cut?)");
      stream.notes.push(`cut stream ${t.outcome.slice(0, 100)} ${Math.round(t.ms)} ms after the reset`);
      const again = await bounded("a new stream after the cut", 30_000, () => echo(session, MiB));
      if (again !== MiB) stream.problems.push(`a new stream after the cut echoed ${again} of ${MiB} bytes`);
      stream.recoveryMs.push(performance.now() - cut);
    } catch (e) {
      stream.problems.push((e as Error).message);
    }
    stream.faults = viaClients.faults - counted;

    // The pulled cable: nothing reaches either end, not even a close.
    const power = session.session.root.child("power", PowerClient);
    await power.on();
    const markE = exporter.lines.length;
    const markC = lab.controller.lines.length;
    const silenced = viaExporters.blackhole() + viaClients.blackhole();
    cable.faults = 2;
    const t0 = performance.now();
    const call = power.on().then(() => "worked", (e: Error) => `failed (${e.message.slice(0, 80)})`);
    const exporterNoticed = lineAt(exporter, /lost the connection to the controller at .*: PING/, markE, 30_000);
    const settled = await Promise.race([call.then((o) => ({ o, ms: performance.now() - t0 })), pause(SETTLES_WITHIN_MS + 15_000).then(() => undefined)]);
    if (!settled) cable.problems.push(`a driver call on the black-holed path did not settle within ${(SETTLES_WITHIN_MS + 15_000) / 1000} s`);
    else {
      cable.notes.push(`client: the call on the black-holed path ${settled.o} after ${(settled.ms / 1000).toFixed(1)} s`);
      if (settled.ms > SETTLES_WITHIN_MS) cable.problems.push(`client: the call on the black-holed path settled only after ${(settled.ms / 1000).toFixed(1)} s`);
    }
    const e = await exporterNoticed;
    if (e === undefined) cable.problems.push("exporter: never said it lost the controller");
    else {
      cable.recoveryMs.push(e - t0);
      if (e - t0 > NOTICED_WITHIN_MS) cable.problems.push(`exporter: noticed the silent controller after ${((e - t0) / 1000).toFixed(1)} s (limit ${NOTICED_WITHIN_MS / 1000} s)`);
    }
    // The controller's ends of the silenced connections: each must be given up by its own PING,
    // within its interval and the time to answer it names in its log line (5 s, or 20 s on a
    // connection that carried a stream through the router: its peer answers behind its uploads).
    // A quick run waits a little past the longest limit, a full one long enough to say how late.
    const drops = /no answer to a keepalive PING from .* within (\d+) ms/;
    const limitOf = (text: string) => CONTROLLER_PING_INTERVAL_MS + Number(drops.exec(text)![1]) + SLACK_MS;
    const deadline = t0 + (opts.quick ? CONTROLLER_PING_INTERVAL_MS + CONTROLLER_BULK_TIMEOUT_MS + SLACK_MS + 1_000 : 45_000);
    const dropped = () => lab.controller.lines.slice(markC).filter((l) => drops.test(l.text));
    while (dropped().length < silenced && performance.now() < deadline) await pause(200);
    const given = dropped();
    if (given.length < silenced) cable.problems.push(`controller: gave up ${given.length} of the ${silenced} silent connections within ${((deadline - t0) / 1000).toFixed(0)} s`);
    for (const d of given.slice(0, silenced)) {
      cable.recoveryMs.push(d.at - t0);
      if (d.at - t0 > limitOf(d.text)) cable.problems.push(`controller: gave up a silent connection after ${((d.at - t0) / 1000).toFixed(1)} s (limit ${(limitOf(d.text) / 1000).toFixed(0)} s): ${d.text}`);
    }
    try {
      await bounded("a driver call after the black hole", 30_000, () => power.on());
    } catch (err) {
      cable.problems.push(`client: the next call after the black hole failed: ${(err as Error).message}`);
    }
    say(opts, `black hole: ${cable.notes.join("; ")}; exporter noticed ${e === undefined ? "never" : Math.round(e - t0)} ms, controller ${given.map((d) => Math.round(d.at - t0)).join(", ")} ms`);

    stacks.push(...stackLines(`${lab.controller.output}\n${exporter.output}`));
    if (stacks.length) cable.problems.push(`the controller's or the exporter's log has a stack trace: ${stacks[0]!.trim()}`);
  } finally {
    await watching?.stop();
    await leased?.close().catch(() => {});
    connection.current?.close();
    await closeLab(opts, lab).catch((e: Error) => cable.problems.push(`cleanup: ${e.message.split("\n")[0]}`));
    await viaClients.close();
    await viaExporters.close();
  }
}
