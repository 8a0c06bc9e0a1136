/** `jmp completion bash|zsh|fish`: shell completion for the jmp command tree. */
import { type CommandDef, defineCommand } from "citty";
import { UserError } from "../common/errors.ts";

type Tree = Map<string, { words: string[]; flags: string[] }>;

async function walk(cmd: CommandDef<any>, path: string, tree: Tree): Promise<void> {
  const resolve = async <T>(v: unknown): Promise<T> => (typeof v === "function" ? await v() : await v) as T;
  const subs = (await resolve<Record<string, CommandDef<any>> | undefined>(cmd.subCommands)) ?? {};
  const args = (await resolve<Record<string, { type?: string; alias?: string | string[] }> | undefined>(cmd.args)) ?? {};
  const flags = Object.entries(args)
    .filter(([, a]) => a.type !== "positional")
    .map(([k]) => `--${k.replace(/([a-z0-9])([A-Z])/g, "$1-$2").toLowerCase()}`);
  tree.set(path, { words: Object.keys(subs), flags: [...flags, "--help"] });
  for (const [name, sub] of Object.entries(subs)) await walk(await resolve(sub), path ? `${path} ${name}` : name, tree);
}

function bash(tree: Tree): string {
  const cases = [...tree].map(([path, t]) => `    "${path}") words="${[...t.words, ...t.flags].join(" ")}" ;;`).join("\n");
  return `# jmp bash completion: eval "$(jmp completion bash)"
_jmp() {
  local cur path="" i
  cur="\${COMP_WORDS[COMP_CWORD]}"
  for ((i = 1; i < COMP_CWORD; i++)); do
    case "\${COMP_WORDS[i]}" in -*) ;; *) path="\${path:+$path }\${COMP_WORDS[i]}" ;; esac
  done
  local words=""
  case "$path" in
${cases}
  esac
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -o default -F _jmp jmp
`;
}

function zsh(tree: Tree): string {
  return `#compdef jmp
# jmp zsh completion: eval "$(jmp completion zsh)"
autoload -U +X bashcompinit && bashcompinit
${bash(tree).split("\n").slice(1).join("\n")}`;
}

function fish(tree: Tree): string {
  const lines = ["# jmp fish completion: jmp completion fish | source", "complete -c jmp -f"];
  for (const [path, t] of tree) {
    const cond = path ? `__fish_seen_subcommand_from ${path.split(" ").pop()}` : "__fish_use_subcommand";
    for (const w of t.words) lines.push(`complete -c jmp -n '${cond}' -a ${w}`);
    for (const f of t.flags) lines.push(`complete -c jmp -n '${cond}' -l ${f.slice(2)}`);
  }
  return lines.join("\n") + "\n";
}

export default defineCommand({
  meta: { name: "completion", description: "Print a shell completion script (bash, zsh or fish)" },
  args: { shell: { type: "positional", description: "bash, zsh or fish", required: true } },
  async run({ args }) {
    const { rootCommand } = await import("./commands.ts");
    const tree: Tree = new Map();
    await walk(rootCommand, "", tree);
    const render = { bash, zsh, fish }[args.shell as "bash" | "zsh" | "fish"];
    if (!render) throw new UserError(`'completion' takes bash, zsh or fish: got '${args.shell}'`, 2);
    process.stdout.write(render(tree));
  },
});
