/**
 * Serves one GPIO driver on a session socket, for tests that run it under the
 * simulated chips (the driver must run in the process umockdev wraps; the test's
 * client connects from outside). Prints {"socket": path} or {"error": message},
 * then serves; a line "close" on stdin ends the session (the driver releases its
 * line) and prints {"closed": true}; the end of stdin ends the process.
 *
 * usage: bun serve-driver.ts '{"type": "DigitalOutput", "config": {...}}'
 */
import { config as schema, type Driver, type DriverClass } from "@jumpstarter/driver";
import { serve } from "../../../src/testing/serve.ts";
import { DigitalInput, DigitalOutput, PowerSwitch } from "../driver.ts";

const DRIVERS: Record<string, DriverClass> = { DigitalOutput, DigitalInput, PowerSwitch };
const { type, config } = JSON.parse(process.argv[2]!) as { type: string; config: Record<string, unknown> };

let driver: Driver;
try {
  const Class = DRIVERS[type]!;
  driver = new Class(schema.parseShape(Class.configShape, config));
} catch (e) {
  console.log(JSON.stringify({ error: (e as Error).message, class: (e as Error).constructor.name }));
  process.exit(2);
}
const served = await serve(driver);
console.log(JSON.stringify({ socket: served.socket, pid: process.pid }));
const close = async () => {
  await served.close();
  console.log(JSON.stringify({ closed: true }));
};
let closing: Promise<void> | undefined;
const decoder = new TextDecoder();
for await (const chunk of Bun.stdin.stream()) {
  if (decoder.decode(chunk).split("\n").includes("close")) closing ??= close();
}
await (closing ??= close());
process.exit(0);
