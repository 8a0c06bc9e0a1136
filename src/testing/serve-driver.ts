/**
 * Serves one driver on a session socket, for tests that run it under simulated
 * devices (the driver must run in the process umockdev wraps; the test's client
 * connects from outside). Prints {"socket": path, "pid": pid} or {"error": message},
 * then serves. A line "close" on stdin ends the session (the driver releases its
 * devices) and prints {"closed": true}; the end of stdin ends the process (closing
 * the session first if that has not happened). The driver's log lines go to stderr,
 * as an exporter's do.
 *
 * usage: bun serve-driver.ts '{"module": "/path/driver.ts", "class": "UsbHubPort", "config": {...}}'
 */
import { config as schema, type Driver, type DriverClass } from "@jumpstarter/driver";
import { serve } from "./serve.ts";

const { module, class: name, config } = JSON.parse(process.argv[2]!) as { module: string; class: string; config: Record<string, unknown> };

let driver: Driver;
try {
  const Class = (await import(module))[name] as DriverClass;
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
