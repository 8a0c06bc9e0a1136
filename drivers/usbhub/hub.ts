/**
 * The hub-class requests of USB 2.0 chapter 11 (and their USB 3.x variants) that
 * switch and read a downstream port, as uhubctl sends them: SET_FEATURE and
 * CLEAR_FEATURE(PORT_POWER) to the port, GET_STATUS of the port, and the hub
 * descriptor for the number of ports and how the hub switches power.
 */
import { REQUEST, type ControlSetup } from "../usb-common/libusb.ts";

export const GET_STATUS = 0;
export const CLEAR_FEATURE = 1;
export const SET_FEATURE = 3;
export const GET_DESCRIPTOR = 6;
export const PORT_POWER = 8;
/** Hub descriptor types: USB 2.0 (0x29) and SuperSpeed (0x2A). */
export const HUB_DESCRIPTOR = 0x29;
export const SS_HUB_DESCRIPTOR = 0x2a;

const TO_PORT = REQUEST.CLASS | REQUEST.OTHER;
const TO_HUB = REQUEST.CLASS | REQUEST.DEVICE;

export const setup = {
  power(port: number, on: boolean): ControlSetup {
    return { requestType: REQUEST.OUT | TO_PORT, request: on ? SET_FEATURE : CLEAR_FEATURE, value: PORT_POWER, index: port };
  },
  portStatus(port: number): ControlSetup {
    return { requestType: REQUEST.IN | TO_PORT, request: GET_STATUS, value: 0, index: port };
  },
  hubDescriptor(superSpeed: boolean): ControlSetup {
    return { requestType: REQUEST.IN | TO_HUB, request: GET_DESCRIPTOR, value: (superSpeed ? SS_HUB_DESCRIPTOR : HUB_DESCRIPTOR) << 8, index: 0 };
  },
};

export type PowerSwitching = "per-port" | "ganged" | "none";

export interface HubDescriptor {
  ports: number;
  /** wHubCharacteristics bits 1:0: 00 ganged, 01 per port, 1x none (USB 1.x hubs). */
  switching: PowerSwitching;
}

export function decodeHubDescriptor(raw: Uint8Array): HubDescriptor {
  if (raw.byteLength < 5 || (raw[1] !== HUB_DESCRIPTOR && raw[1] !== SS_HUB_DESCRIPTOR)) {
    throw new Error(`not a hub descriptor: ${Buffer.from(raw).toString("hex") || "(empty)"}`);
  }
  const mode = raw[3]! & 0x03;
  return { ports: raw[2]!, switching: mode === 0 ? "ganged" : mode === 1 ? "per-port" : "none" };
}

export interface PortStatus {
  powered: boolean;
  /** A device is attached (and the port is powered). */
  connected: boolean;
  enabled: boolean;
  suspended: boolean;
  overcurrent: boolean;
  /** The attached device's speed, when one is connected. */
  speed?: "low" | "full" | "high" | "super";
  /** wPortStatus as the hub sent it. */
  raw: number;
}

/** wPortStatus (the first half of GET_STATUS's answer); bit positions differ on SuperSpeed hubs. */
export function decodePortStatus(answer: Uint8Array, superSpeed: boolean): PortStatus {
  if (answer.byteLength < 2) throw new Error(`the hub sent ${answer.byteLength} bytes of port status (4 expected)`);
  const s = answer[0]! | (answer[1]! << 8);
  const connected = Boolean(s & 0x0001);
  const status: PortStatus = {
    powered: Boolean(s & (superSpeed ? 0x0200 : 0x0100)),
    connected,
    enabled: Boolean(s & 0x0002),
    // A SuperSpeed port has link states (bits 5-8) instead; U3 is its suspend.
    suspended: superSpeed ? ((s >> 5) & 0x0f) === 3 : Boolean(s & 0x0004),
    overcurrent: Boolean(s & 0x0008),
    raw: s,
  };
  if (connected) status.speed = superSpeed ? "super" : s & 0x0200 ? "low" : s & 0x0400 ? "high" : "full";
  return status;
}

/** `powered, device connected (high speed), enabled` */
export function describePortStatus(s: PortStatus): string {
  return [
    s.powered ? "powered" : "unpowered",
    s.connected ? `device connected${s.speed ? ` (${s.speed} speed)` : ""}` : "nothing connected",
    s.enabled ? "enabled" : "",
    s.suspended ? "suspended" : "",
    s.overcurrent ? "OVER-CURRENT" : "",
  ].filter(Boolean).join(", ");
}
