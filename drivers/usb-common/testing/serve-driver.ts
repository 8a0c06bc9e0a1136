/**
 * Serves one driver on a session socket, for tests that run it under the
 * simulated USB devices (the driver must run in the process umockdev wraps; the
 * test's client connects from outside). Prints {"socket": path} or
 * {"error": message}, then serves until stdin ends. The driver's log lines go to
 * stderr, as an exporter's do.
 *
 * usage: bun serve-driver.ts '{"module": "/path/driver.ts", "class": "UsbHubPort", "config": {...}}'
 */
import { config as schema, type Driver, type DriverClass } from "@jumpstarter/driver";
import { serve } from "../../../src/testing/serve.ts";

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
for await (const _ of Bun.stdin.stream()) {
  // serve until stdin ends
}
await served.close();
process.exit(0);
