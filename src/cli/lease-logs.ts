/**
 * `jmp lease logs NAME [--driver console] [-f]`: what the lease's consoles printed,
 * as the exporter captured it and the controller keeps it (during and after the lease).
 */
import { defineCommand } from "../common/command.ts";
import { stdout } from "../common/stdout.ts";
import { CLIENT_ARGS, controllerFromArgs } from "./client-context.ts";

export const leaseLogs = defineCommand({
  meta: { name: "logs", description: "Show what the lease's consoles printed (kept by the controller; also after the lease ended)" },
  args: {
    ...CLIENT_ARGS,
    lease: { type: "positional", description: "lease name", required: true },
    driver: { type: "string", description: "only this console driver (its name in the exporter config, e.g. console or dut.console)", valueHint: "NAME" },
    follow: { type: "boolean", alias: "f", description: "keep printing as output arrives, until the lease has ended" },
  },
  async run({ args }) {
    const [c, { readConsoleLogs }] = await Promise.all([controllerFromArgs(args), import("../client/console-logs.ts")]);
    c.close();
    const stop = new AbortController();
    const onSignal = () => stop.abort();
    process.once("SIGINT", onSignal);
    let last: string | undefined;
    let any = false;
    try {
      for await (const chunk of readConsoleLogs(c.address, { lease: args.lease, driver: args.driver, follow: args.follow, signal: stop.signal })) {
        // Several consoles: a header whenever the output switches to another, as tail does.
        if (!args.driver && chunk.driver !== last) process.stderr.write(`${any ? "\n" : ""}==> ${chunk.driver} <==\n`);
        if (chunk.skipped > 0) process.stderr.write(`(${chunk.skipped} earlier bytes of ${chunk.driver} are no longer kept)\n`);
        last = chunk.driver;
        any = true;
        const out = stdout();
        if (!out.write(chunk.data)) await new Promise((r) => out.once("drain", r));
      }
    } catch (e) {
      if (!stop.signal.aborted) throw e;
    } finally {
      process.off("SIGINT", onSignal);
    }
    if (!any && !stop.signal.aborted) process.stderr.write(`lease ${args.lease}: no console output captured${args.follow ? "" : " (yet)"}\n`);
  },
});
