import { expect, test } from "bun:test";
import { readAll } from "@jumpstarter/driver";
import { ByteFifo, Uart } from "./uart.ts";
import { Transcript } from "./transcript.ts";

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array) => new TextDecoder().decode(b);

test("the FIFO keeps the newest bytes up to its limit", () => {
  const fifo = new ByteFifo(8);
  fifo.push(bytes("abc"));
  fifo.push(bytes("defgh"));
  fifo.push(bytes("ij"));
  expect(fifo.size).toBe(8);
  expect(text(fifo.takeAll())).toBe("cdefghij");
  expect(fifo.size).toBe(0);
  fifo.push(bytes("0123456789abc"));
  expect(text(fifo.takeAll())).toBe("56789abc");
});

test("output with no reader waits for the next connection, oldest dropped past the limit", async () => {
  const uart = new Uart(1024);
  uart.transmit(bytes("lost-"));
  uart.transmit(bytes("x".repeat(1020)));
  uart.transmit(bytes("tail"));
  expect(uart.pending).toBe(1024);
  const conn = uart.connect(() => {});
  const out = Transcript.of(conn.readable);
  const got = await out.expect("tail");
  expect(got).toBe("x".repeat(1020) + "tail");
  expect(uart.pending).toBe(0);
  uart.transmit(bytes("live"));
  await out.expect("live");
  await conn.readable.cancel().catch(() => {});
});

test("every connection sees new output and can type", async () => {
  const uart = new Uart(1024);
  const typed: string[] = [];
  const a = uart.connect((b) => typed.push(`a:${text(b)}`));
  const b = uart.connect((b) => typed.push(`b:${text(b)}`));
  expect(uart.readers).toBe(2);
  const outA = Transcript.of(a.readable);
  const outB = Transcript.of(b.readable);
  uart.transmit(bytes("login: "));
  await outA.expect("login: ");
  await outB.expect("login: ");
  await a.writable.getWriter().write(bytes("root"));
  await b.writable.getWriter().write(bytes("\r"));
  expect(typed).toEqual(["a:root", "b:\r"]);
});

test("what the last reader left unread is delivered to the next one", async () => {
  const uart = new Uart(1024);
  const first = uart.connect(() => {});
  const reader = first.readable.getReader();
  uart.transmit(bytes("one "));
  expect(text((await reader.read()).value!)).toBe("one ");
  uart.transmit(bytes("two "));
  await reader.cancel();
  expect(uart.readers).toBe(0);
  uart.transmit(bytes("three"));
  const next = Transcript.of(uart.connect(() => {}).readable);
  expect(await next.expect("three")).toBe("two three");
});

test("closing the port ends every connection's stream", async () => {
  const uart = new Uart(1024);
  const conn = uart.connect(() => {});
  uart.transmit(bytes("bye"));
  uart.closeAll();
  expect(text(await readAll(conn.readable))).toBe("bye");
  expect(uart.readers).toBe(0);
});
