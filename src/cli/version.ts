/** `jmp version`: what this executable is. Kept import-free so it stays fast. */
import { defineCommand } from "../common/command.ts";
import { META } from "./command-meta.ts";

declare const __JMP_VERSION__: string | undefined;
declare const __JMP_COMMIT__: string | undefined;

export function versionInfo() {
  return {
    version: typeof __JMP_VERSION__ === "string" ? __JMP_VERSION__ : "0.0.0-dev",
    commit: typeof __JMP_COMMIT__ === "string" ? __JMP_COMMIT__ : "unknown",
    runtime: `bun ${Bun.version}`,
    platform: `${process.platform}-${process.arch}`,
  };
}

export default defineCommand({
  meta: META.version,
  args: { output: { type: "string", alias: "o", description: "text, json or yaml", default: "text" } },
  async run({ args }) {
    const info = versionInfo();
    if (args.output === "json") console.log(JSON.stringify(info, null, 2));
    else if (args.output === "yaml") for (const [k, v] of Object.entries(info)) console.log(`${k}: ${v}`);
    else if (args.output === "text") console.log(`jmp ${info.version} (${info.commit}, ${info.runtime}, ${info.platform})`);
    else {
      const { UserError } = await import("../common/errors.ts");
      throw new UserError(`'-o' must be text, json or yaml: got '${args.output}'`, 2);
    }
  },
});
