/**
 * The Linux GPIO character device's v2 uAPI (<linux/gpio.h>): ioctl numbers,
 * flags and the byte layout of the structs we pass, as plain encode/decode
 * functions (no FFI here, so they are tested on their own).
 *
 * The structs were designed with explicit padding and 64-bit aligned fields, so
 * they have one layout on every architecture; uapi.test.ts checks sizes, offsets
 * and request numbers against the header with gcc (and against the arm64 header
 * with aarch64-linux-gnu-gcc where it is installed: the same numbers).
 */

export const GPIO_GET_CHIPINFO_IOCTL = 0x8044b401;
export const GPIO_V2_GET_LINEINFO_IOCTL = 0xc100b405;
export const GPIO_V2_GET_LINE_IOCTL = 0xc250b407;
export const GPIO_V2_LINE_GET_VALUES_IOCTL = 0xc010b40e;
export const GPIO_V2_LINE_SET_VALUES_IOCTL = 0xc010b40f;

export const CHIPINFO_SIZE = 68;
export const LINEINFO_SIZE = 256;
export const LINE_REQUEST_SIZE = 592;
export const LINE_VALUES_SIZE = 16;
export const LINE_EVENT_SIZE = 48;

const NAME_SIZE = 32;
const REQUEST_CONSUMER = 256;
const REQUEST_CONFIG = 288;
const CONFIG_NUM_ATTRS = 8;
const CONFIG_ATTRS = 32;
const CONFIG_ATTR_SIZE = 24;
const REQUEST_NUM_LINES = 560;
const REQUEST_FD = 588;
const LINEINFO_OFFSET = 64;
const LINEINFO_FLAGS = 72;

export const LineFlag = {
  USED: 1n << 0n,
  ACTIVE_LOW: 1n << 1n,
  INPUT: 1n << 2n,
  OUTPUT: 1n << 3n,
  EDGE_RISING: 1n << 4n,
  EDGE_FALLING: 1n << 5n,
  OPEN_DRAIN: 1n << 6n,
  OPEN_SOURCE: 1n << 7n,
  BIAS_PULL_UP: 1n << 8n,
  BIAS_PULL_DOWN: 1n << 9n,
  BIAS_DISABLED: 1n << 10n,
} as const;

const ATTR_ID_OUTPUT_VALUES = 2;
export const EVENT_RISING_EDGE = 1;
export const EVENT_FALLING_EDGE = 2;

export interface ChipInfo {
  name: string;
  label: string;
  lines: number;
}

export interface LineInfo {
  offset: number;
  name: string;
  consumer: string;
  flags: bigint;
}

export interface LineEvent {
  timestampNs: bigint;
  /** EVENT_RISING_EDGE or EVENT_FALLING_EDGE, in terms of the line's active state. */
  id: number;
  offset: number;
}

function cString(bytes: Uint8Array, start: number, size: number): string {
  const field = bytes.subarray(start, start + size);
  const end = field.indexOf(0);
  return new TextDecoder().decode(end === -1 ? field : field.subarray(0, end));
}

export function decodeChipInfo(buf: Uint8Array): ChipInfo {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  return { name: cString(buf, 0, NAME_SIZE), label: cString(buf, NAME_SIZE, NAME_SIZE), lines: view.getUint32(64, true) };
}

/** A struct gpio_v2_line_info asking about `offset` (the rest, padding included, must be zero). */
export function lineInfoRequest(offset: number): Uint8Array {
  const buf = new Uint8Array(LINEINFO_SIZE);
  new DataView(buf.buffer).setUint32(LINEINFO_OFFSET, offset, true);
  return buf;
}

export function decodeLineInfo(buf: Uint8Array): LineInfo {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  return {
    name: cString(buf, 0, NAME_SIZE),
    consumer: cString(buf, NAME_SIZE, NAME_SIZE),
    offset: view.getUint32(LINEINFO_OFFSET, true),
    flags: view.getBigUint64(LINEINFO_FLAGS, true),
  };
}

export interface LineRequest {
  offset: number;
  consumer: string;
  flags: bigint;
  /** For an output: its value from the first instant (logical: 1 is active). */
  outputValue?: 0 | 1;
}

/** A struct gpio_v2_line_request for one line. */
export function encodeLineRequest(req: LineRequest): Uint8Array {
  const buf = new Uint8Array(LINE_REQUEST_SIZE);
  const view = new DataView(buf.buffer);
  view.setUint32(0, req.offset, true);
  // The kernel keeps at most 31 bytes and a NUL.
  buf.set(new TextEncoder().encode(req.consumer).subarray(0, NAME_SIZE - 1), REQUEST_CONSUMER);
  view.setBigUint64(REQUEST_CONFIG, req.flags, true);
  if (req.outputValue !== undefined) {
    view.setUint32(REQUEST_CONFIG + CONFIG_NUM_ATTRS, 1, true);
    const attr = REQUEST_CONFIG + CONFIG_ATTRS;
    view.setUint32(attr, ATTR_ID_OUTPUT_VALUES, true);
    view.setBigUint64(attr + 8, BigInt(req.outputValue), true);
    view.setBigUint64(attr + CONFIG_ATTR_SIZE - 8, 1n, true); // mask: the first (only) line
  }
  view.setUint32(REQUEST_NUM_LINES, 1, true);
  return buf;
}

/** The line fd the kernel wrote into a granted request. */
export function requestFd(buf: Uint8Array): number {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength).getInt32(REQUEST_FD, true);
}

/** A struct gpio_v2_line_values for the one line of a request. */
export function encodeLineValues(value: 0 | 1): Uint8Array {
  const buf = new Uint8Array(LINE_VALUES_SIZE);
  const view = new DataView(buf.buffer);
  view.setBigUint64(0, BigInt(value), true);
  view.setBigUint64(8, 1n, true);
  return buf;
}

export function decodeLineValue(buf: Uint8Array): 0 | 1 {
  return (new DataView(buf.buffer, buf.byteOffset, buf.byteLength).getBigUint64(0, true) & 1n) === 1n ? 1 : 0;
}

/** Whole events from the front of `buf`; `rest` is what is left of a partial one. */
export function decodeEvents(buf: Uint8Array): { events: LineEvent[]; rest: Uint8Array } {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const events: LineEvent[] = [];
  let at = 0;
  for (; at + LINE_EVENT_SIZE <= buf.byteLength; at += LINE_EVENT_SIZE) {
    events.push({ timestampNs: view.getBigUint64(at, true), id: view.getUint32(at + 8, true), offset: view.getUint32(at + 12, true) });
  }
  return { events, rest: buf.subarray(at) };
}
