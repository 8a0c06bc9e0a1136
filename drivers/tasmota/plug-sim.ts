/**
 * A Tasmota plug for tests: an MQTT client that answers as Tasmota firmware does
 * with its default FullTopic (%prefix%/%topic%/). `cmnd/<topic>/POWER[n]` with ON,
 * OFF, TOGGLE, 1, 0 or nothing (a query) → `stat/<topic>/RESULT` {"POWER":"ON"} then
 * `stat/<topic>/POWER` ON; `cmnd/<topic>/STATUS` 10 → `stat/<topic>/STATUS10` with
 * the energy meter (StatusSNS.ENERGY); the last will `tele/<topic>/LWT` Online /
 * Offline (retained); `tele/<topic>/STATE` on demand, as its telemetry period sends it.
 */
import { connectAsync, type MqttClient } from "mqtt";

export interface TasmotaPlug {
  topic: string;
  /** Relay states, POWER1 first. */
  on: boolean[];
  /** Every command it received: `POWER ON`, `STATUS 10`, ... */
  commands: string[];
  /** Stop answering (a hung device that keeps its MQTT session). */
  mute(muted: boolean): void;
  /** Answer POWER commands by reporting this state instead of switching (a relay held by an interlock). */
  stuck(state: "ON" | "OFF" | undefined): void;
  /** What the telemetry period publishes. */
  sendTeleState(): Promise<void>;
  /** Ends its connection the way a plug losing power does: the broker publishes its last will. */
  unplug(): void;
  close(): Promise<void>;
}

export async function tasmotaPlug(
  broker: string,
  opts: { topic?: string; relays?: number; energy?: boolean; reconnect?: boolean } = {},
): Promise<TasmotaPlug> {
  const topic = opts.topic ?? "tasmota_6990F2";
  const relays = opts.relays ?? 1;
  const on = Array.from({ length: relays }, () => false);
  const commands: string[] = [];
  let muted = false;
  let stuckAt: "ON" | "OFF" | undefined;
  const lwt = `tele/${topic}/LWT`;
  const mq: MqttClient = await connectAsync(broker, {
    clientId: `DVES_${topic}`,
    will: { topic: lwt, payload: Buffer.from("Offline"), retain: true, qos: 1 },
    reconnectPeriod: opts.reconnect === false ? 0 : 200,
  });
  const online = () => mq.publishAsync(lwt, "Online", { retain: true, qos: 1 });
  mq.on("connect", () => void online());
  await online();
  await mq.subscribeAsync(`cmnd/${topic}/+`, { qos: 1 });

  const powerKey = (i: number) => (relays === 1 ? "POWER" : `POWER${i + 1}`);
  const state = (b: boolean) => (b ? "ON" : "OFF");
  const time = () => new Date().toISOString().slice(0, 19);
  const energy = () => {
    const volts = 230;
    const amps = on.map((b) => (b ? 0.25 : 0));
    const per = <T>(f: (i: number) => T) => (relays === 1 ? f(0) : on.map((_, i) => f(i)));
    return {
      TotalStartTime: "2024-01-01T00:00:00", Total: 12.345, Yesterday: 0.1, Today: 0.02,
      Power: per((i) => (on[i] ? 57 : 0)), ApparentPower: per((i) => Math.round(volts * amps[i]!)), ReactivePower: per(() => 5),
      Factor: per((i) => (on[i] ? 0.99 : 0)), Voltage: per(() => volts), Current: per((i) => amps[i]!),
    };
  };

  mq.on("message", (t, payload) => {
    const command = t.slice(`cmnd/${topic}/`.length).toUpperCase();
    const arg = payload.toString().trim();
    commands.push(arg ? `${command} ${arg}` : command);
    if (muted) return;
    const power = /^POWER(\d*)$/.exec(command);
    if (power) {
      const i = power[1] ? Number(power[1]) - 1 : 0;
      if (i >= relays) return;
      const word = arg.toUpperCase();
      if (stuckAt) on[i] = stuckAt === "ON";
      else if (word === "ON" || word === "1") on[i] = true;
      else if (word === "OFF" || word === "0") on[i] = false;
      else if (word === "TOGGLE" || word === "2") on[i] = !on[i];
      const key = powerKey(i);
      void mq.publishAsync(`stat/${topic}/RESULT`, JSON.stringify({ [key]: state(on[i]!) })).then(() =>
        mq.publishAsync(`stat/${topic}/${key}`, state(on[i]!)),
      );
      return;
    }
    if (command === "STATUS" && arg === "10") {
      const sns: Record<string, unknown> = { Time: time() };
      if (opts.energy !== false) sns.ENERGY = energy();
      void mq.publishAsync(`stat/${topic}/STATUS10`, JSON.stringify({ StatusSNS: sns }));
    }
  });

  return {
    topic,
    on,
    commands,
    mute: (m) => (muted = m),
    stuck: (s) => (stuckAt = s),
    sendTeleState: async () => {
      const st: Record<string, unknown> = { Time: time(), Uptime: "0T00:01:00", UptimeSec: 60 };
      on.forEach((b, i) => (st[powerKey(i)] = state(b)));
      await mq.publishAsync(`tele/${topic}/STATE`, JSON.stringify(st));
    },
    unplug: () => {
      // Ending the stream without DISCONNECT makes the broker send the will, as a power cut would.
      mq.options.reconnectPeriod = 0;
      mq.stream.destroy();
    },
    close: async () => {
      await mq.endAsync(true);
    },
  };
}
