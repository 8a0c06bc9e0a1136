/**
 * Shell completion for `jmp` and `j`. `jmp completion bash|zsh|fish` prints a small
 * script; on every TAB it runs `jmp __complete WORD…` (the words after the program
 * name, the last one being completed, maybe empty), which prints one candidate a
 * line. The candidates come from the command tree itself, so they never go stale:
 * subcommands and their aliases, flags, the values a flag or argument takes (client
 * and exporter config aliases, `-o` formats, lease and exporter names asked of the
 * controller), and for `j` and `jmp j` the tree of the current session
 * (JUMPSTARTER_HOST). Anything that needs the network gets {@link ASK_MS}; a
 * controller or session that is slow or down yields no candidates, never an error.
 */
import type { ArgDef, ArgsDef } from "citty";
import { defineCommand } from "../common/command.ts";
import { META } from "./command-meta.ts";
import { UserError } from "../common/errors.ts";
import {
  type AnyCommand, aliasesOf, argsOf, commandNames, flagDef, isFlag, kebab, repeats, subCommandNamed, wantsNext,
} from "./tree.ts";
import { stdout } from "../common/stdout.ts";
import { within } from "../common/within.ts";

/** How long a TAB may wait for the controller or the session. */
export const ASK_MS = 1500;

/** Where the words before the cursor led. */
interface Place {
  /** Command names typed so far, from the root ("jmp", "lease", "get"). */
  path: string[];
  cmd: AnyCommand;
  /** The command's flags, with the global ones. */
  args: ArgsDef;
  positionals: string[];
  /** Flags given, by key. */
  given: Set<string>;
  /** The words before the cursor, to find `--client X` and the like. */
  words: string[];
}

/** The `--log-level`/`--log-format` of the root, valid on every command. */
async function globalArgs(): Promise<ArgsDef> {
  const { rootCommand } = await import("./commands.ts");
  return argsOf(rootCommand);
}

async function walk(root: AnyCommand, rootName: string, words: string[]): Promise<Place> {
  const globals = await globalArgs();
  const place: Place = { path: [rootName], cmd: root, args: { ...(await argsOf(root)), ...globals }, positionals: [], given: new Set(), words };
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (isFlag(w)) {
      const found = flagDef(place.args, w);
      if (found) place.given.add(found.key);
      if (wantsNext(place.args, w)) i++;
      continue;
    }
    const sub = place.positionals.length === 0 ? await subCommandNamed(place.cmd, w) : undefined;
    if (!sub) {
      place.positionals.push(w);
      continue;
    }
    place.path.push(w);
    place.cmd = sub;
    place.args = { ...(await argsOf(sub)), ...globals };
  }
  return place;
}

/** The value after `--client` (or `--client=`), the last one given. */
function flagValue(words: string[], flag: string): string | undefined {
  let value: string | undefined;
  for (let i = 0; i < words.length; i++) {
    if (words[i] === flag) value = words[i + 1];
    else if (words[i]!.startsWith(`${flag}=`)) value = words[i]!.slice(flag.length + 1);
  }
  return value;
}

async function controller(place: Place) {
  const [{ controllerFromArgs }, { LeaseApi }] = await Promise.all([import("./client-context.ts"), import("../client/leases.ts")]);
  const c = await controllerFromArgs({ client: flagValue(place.words, "--client"), clientConfig: flagValue(place.words, "--client-config") });
  return { api: new LeaseApi(c), me: c.address.name };
}

async function leaseNames(place: Place): Promise<string[]> {
  const names = await within((async () => {
    const { api, me } = await controller(place);
    return (await api.list({ onlyActive: true })).filter((l) => l.client === me).map((l) => l.name);
  })(), ASK_MS);
  return names ?? [];
}

async function exporterNames(place: Place): Promise<string[]> {
  const names = await within((async () => (await (await controller(place)).api.exporters()).map((e) => e.name.split("/").pop()!))(), ASK_MS);
  return names ?? [];
}

async function clientAliases(): Promise<string[]> {
  return (await import("../common/client-config.ts")).listClientConfigs().map((c) => c.alias);
}

async function exporterAliases(): Promise<string[]> {
  return (await import("../common/exporter-config.ts")).listExporterConfigs().map((c) => c.alias);
}

/** "table, json, yaml or name": a description that is nothing but the choices. */
function listedChoices(description = ""): string[] {
  return /^[\w-]+(, [\w-]+)* or [\w-]+$/.test(description) ? description.split(/, | or /) : [];
}

/** What the flag or argument `key` of the command at `place` takes. */
async function valuesOf(key: string, def: ArgDef, place: Place): Promise<string[]> {
  if (def.type === "enum" && def.options?.length) return def.options;
  const listed = listedChoices(def.description);
  if (listed.length) return listed;
  const command = place.path.at(-1);
  if (key === "lease" || key === "leases") return leaseNames(place);
  if (def.type === "positional") {
    // `jmp config client use|delete ALIAS`, `jmp config exporter delete ALIAS`: existing ones.
    if (key !== "alias" || command === "create") return [];
    return place.path.includes("client") ? clientAliases() : place.path.includes("exporter") ? exporterAliases() : [];
  }
  if (def.valueHint === "ALIAS") return key === "client" ? clientAliases() : key === "exporter" ? exporterAliases() : [];
  // `-n EXPORTER` of the commands that lease one (they take a selector too).
  if (key === "name" && "selector" in place.args) return exporterNames(place);
  return [];
}

function flagWords(place: Place): string[] {
  const out: string[] = [];
  for (const [key, def] of Object.entries(place.args)) {
    if (def.type === "positional" || (place.given.has(key) && !repeats(def))) continue;
    out.push(`--${kebab(key)}`, ...aliasesOf(def).filter((a) => a.length > 1).map((a) => `--${a}`));
  }
  return [...out, "--help"];
}

/** The candidates for the last of `words` (the words after the program name). */
export async function complete(words: string[]): Promise<string[]> {
  const current = words.at(-1) ?? "";
  let before = words.slice(0, -1);
  let root: AnyCommand;
  let rootName = "jmp";
  if (before[0] === "j") {
    const tree = await within(import("./j.ts").then((j) => j.sessionCommand()), ASK_MS);
    if (!tree) return [];
    root = tree;
    rootName = "j";
    before = before.slice(1);
  } else {
    root = (await import("./commands.ts")).rootCommand;
  }
  const place = await walk(root, rootName, before);

  // A flag's value: `--client al`, or `--client=al` in one word.
  const previous = before.at(-1);
  const inline = /^(--[^=]+)=(.*)$/.exec(current);
  const flagWord = inline ? inline[1]! : previous !== undefined && wantsNext(place.args, previous) && !endsWithValue(place, before) ? previous : undefined;
  if (flagWord) {
    const found = flagDef(place.args, flagWord);
    if (!found) return [];
    const partial = inline ? inline[2]! : current;
    const values = (await valuesOf(found.key, found.def, place)).filter((v) => v.startsWith(partial));
    return inline ? values.map((v) => `${flagWord}=${v}`) : values;
  }
  if (current.startsWith("-")) return flagWords(place).filter((f) => f.startsWith(current));

  const candidates: string[] = [];
  // One-letter aliases (`l`, `e`) are typed whole, never completed.
  if (place.positionals.length === 0) candidates.push(...(await commandNames(place.cmd)).filter((n) => n.length > 1));
  const positionals = Object.entries(await argsOf(place.cmd)).filter(([, d]) => d.type === "positional");
  // The argument at the cursor; a plural last one (LEASES) takes any number.
  const [key, def] = positionals[place.positionals.length] ?? (positionals.at(-1)?.[0].endsWith("s") ? positionals.at(-1)! : []);
  if (key && def) candidates.push(...(await valuesOf(key, def, place)));
  return candidates.filter((c) => c.startsWith(current));
}

/** Whether the last word before the cursor is itself a value (`--tag --client`: no, `--tag x`: yes). */
function endsWithValue(place: Place, before: string[]): boolean {
  let valueAt = -1;
  for (let i = 0; i < before.length; i++) if (wantsNext(place.args, before[i]!)) valueAt = ++i;
  return valueAt === before.length - 1;
}

const BASH = `# jmp bash completion, for jmp and j: eval "$(jmp completion bash)"
_jmp_complete() {
  local line=\${COMP_LINE:0:COMP_POINT} cur=\${COMP_WORDS[COMP_CWORD]} word prefix="" c
  local -a words
  read -r -a words <<<"$line"
  if [[ -z $line || $line =~ [[:space:]]$ ]]; then words+=(""); fi
  word=\${words[\${#words[@]}-1]}
  # bash splits a word at '=' and ':' (COMP_WORDBREAKS); the candidates are whole words.
  if [[ $word == *"$cur" ]]; then prefix=\${word%"$cur"}; fi
  COMPREPLY=()
  while IFS= read -r c; do
    [[ -n $c ]] && COMPREPLY+=("\${c#"$prefix"}")
  done < <("\${words[0]}" __complete "\${words[@]:1}" 2>/dev/null)
}
complete -o default -F _jmp_complete jmp j
`;

const ZSH = `#compdef jmp j
# jmp zsh completion, for jmp and j: eval "$(jmp completion zsh)" (after compinit)
_jmp() {
  local -a candidates
  candidates=("\${(@f)$(\${words[1]} __complete "\${(@)words[2,CURRENT]}" 2>/dev/null)}")
  candidates=(\${candidates:#})
  if (( \${#candidates} )); then compadd -- "\${candidates[@]}"; else _files; fi
}
compdef _jmp jmp j
`;

const FISH = `# jmp fish completion, for jmp and j: jmp completion fish | source
function __jmp_complete
    set -l current (commandline -ct)
    set -l tokens (commandline -opc) "$current"
    set -l found ($tokens[1] __complete $tokens[2..-1] 2>/dev/null)
    if set -q found[1]
        printf '%s\\n' $found
    else
        __fish_complete_path "$current"
    end
end
complete -c jmp -f -a '(__jmp_complete)'
complete -c j -f -a '(__jmp_complete)'
`;

export default defineCommand({
  meta: META.completion,
  args: { shell: { type: "positional", description: "bash, zsh or fish", required: true } },
  async run({ args }) {
    const script = ({ bash: BASH, zsh: ZSH, fish: FISH } as Record<string, string>)[args.shell];
    if (!script) throw new UserError(`'completion' takes bash, zsh or fish: got '${args.shell}'`, 2);
    stdout().write(script);
  },
});
