/**
 * The NOYITO relay boards' protocol, shared by the serial (CH340) and the HID
 * boards: 4-byte commands `A0 channel state checksum`, the checksum being the
 * low byte of their sum; status comes back as text lines `CH1:ON`, `CH2:OFF`.
 */

/** `A0 ch state (A0+ch+state)&FF`: state 1 energises the relay, 0 releases it. */
export function buildCommand(channel: number, state: number): Uint8Array {
  return new Uint8Array([0xa0, channel, state, (0xa0 + channel + state) & 0xff]);
}

/** The serial board answers this one byte with its status lines. */
export const SERIAL_STATUS_QUERY = new Uint8Array([0xff]);
/** The HID board's status query: the all-channels pseudo-channel 0x0F, state 2. */
export const HID_STATUS_QUERY = buildCommand(0x0f, 0x02);

/** `CH1:ON \r\nCH2:OFF` → { CH1: "ON", CH2: "OFF" }, as upstream parses it. */
export function parseStatus(text: string): Record<string, string> {
  const result: Record<string, string> = {};
  for (const raw of text.replace(/\r/g, "").split("\n")) {
    const line = raw.replace(/\0/g, "").trim();
    const at = line.indexOf(":");
    if (at > 0) result[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return result;
}

/** Whether every channel asked about has a complete line in `text` yet (a line ends with a newline). */
export function hasChannels(text: string, channels: number[]): boolean {
  const complete = text.slice(0, text.lastIndexOf("\n") + 1);
  const found = parseStatus(complete);
  return channels.every((c) => `CH${c}` in found);
}

/**
 * The state of `channels` as upstream's status() says it: "on" or "off" when they
 * agree, "partial" when they do not. Throws naming a channel the board did not report.
 */
export function channelsState(status: Record<string, string>, channels: number[], board: string): string {
  const states = channels.map((c) => {
    const value = status[`CH${c}`];
    if (value === undefined) {
      throw new Error(`${board} did not report channel ${c}: it answered ${JSON.stringify(status)}`);
    }
    return value.toLowerCase();
  });
  return states.every((s) => s === states[0]) ? states[0]! : "partial";
}
