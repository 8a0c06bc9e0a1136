/**
 * The client for any driver whose client class we lack (upstream would skip it):
 * each exported method becomes a `j` subcommand taking JSON-or-text arguments, with
 * `methods_description` as help. Unary results are printed as JSON, streaming
 * results one per line, byte streams are piped to stdin/stdout.
 */
import { defineCommand, type CommandDef } from "../common/command.ts";
import { DriverClient } from "./client.ts";
import { pumpStdio } from "./stdio.ts";
import { METHODS_LABEL } from "./labels.ts";
import type { ExportKind } from "./markers.ts";

export class GenericClient extends DriverClient {
  /** Methods known from our exporter's label, else from `methods_description` keys. */
  methods(): Map<string, ExportKind> {
    const out = new Map<string, ExportKind>();
    const label = this.labels[METHODS_LABEL];
    if (label) {
      for (const item of label.split(",")) {
        const [name, kind] = item.split(":");
        if (name) out.set(name, (kind as ExportKind) || "unary");
      }
    } else {
      for (const name of Object.keys(this.methodsDescription)) out.set(name, "unary");
    }
    return out;
  }

  override cli(): CommandDef<any> {
    const subCommands: Record<string, CommandDef<any>> = {};
    for (const [method, kind] of this.methods()) {
      subCommands[method] = defineCommand({
        meta: { description: this.help(method, `${kind === "unary" ? "call" : kind === "streaming" ? "stream" : "open byte stream"} ${method}`) },
        args: { args: { type: "positional", required: false, description: "arguments (JSON values, or plain text)" } },
        run: async ({ rawArgs }) => {
          const args = rawArgs.filter((a) => a !== "--").map(parseArg);
          if (kind === "bytes") {
            await pumpStdio(await this.stream(method));
          } else if (kind === "streaming") {
            for await (const item of this.streamingCall(method, ...args)) console.log(render(item));
          } else {
            const result = await this.call(method, ...args);
            if (result !== null && result !== undefined) console.log(render(result));
          }
        },
      });
    }
    const labelled = this.labels["jumpstarter.dev/client"] ?? "unknown";
    return defineCommand({
      meta: { description: this.description ?? `driver with client ${labelled} (generic client)` },
      subCommands,
    });
  }
}

function parseArg(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function render(value: unknown): string {
  return typeof value === "string" ? value : JSON.stringify(value);
}
