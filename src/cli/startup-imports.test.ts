/**
 * What `jmp version` and `jmp --help` load before they run: src/cli/main.ts and
 * the files it imports statically, and theirs. None may import a Node built-in or
 * citty at the top: each built-in costs start-up 0.5-4 ms of a ~7 ms start
 * (node:util through citty's parser, node:fs, node:path, node:os; bench/README.md),
 * which is why commands import their roles inside `run`.
 */
import { expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const root = join(import.meta.dir, "..", "..");

/** Value imports and re-exports at the top of a file (type-only ones vanish in the build). */
function staticImports(file: string): string[] {
  const source = readFileSync(file, "utf8");
  const out: string[] = [];
  for (const m of source.matchAll(/^(?:import|export)\s+(?!type\b)([^;]*?)\s*from\s*"([^"]+)";/gms)) {
    const names = m[1]!.trim();
    // `import { type A, type B } from` is type-only too.
    if (/^\{\s*(?:type\s+\w+(?:\s+as\s+\w+)?\s*,?\s*)+\}$/.test(names)) continue;
    out.push(m[2]!);
  }
  for (const m of source.matchAll(/^import\s+"([^"]+)";/gm)) out.push(m[1]!);
  return out;
}

/** `@jumpstarter/driver`, as built-in drivers import it. */
const DRIVER_API = join(root, "src", "driver", "index.ts");

function startupGraph(entries: string[]): { files: string[]; external: { from: string; spec: string }[] } {
  const seen = new Set<string>();
  const external: { from: string; spec: string }[] = [];
  const visit = (file: string) => {
    // Generated code imports its neighbours without the extension.
    if (!existsSync(file) && existsSync(`${file}.ts`)) file = `${file}.ts`;
    if (seen.has(file)) return;
    seen.add(file);
    for (const spec of staticImports(file)) {
      if (spec.startsWith(".")) visit(resolve(dirname(file), spec));
      else if (spec === "@jumpstarter/driver") visit(DRIVER_API);
      else external.push({ from: relative(root, file), spec });
    }
  };
  for (const entry of entries) visit(entry);
  return { files: [...seen].map((f) => relative(root, f)), external };
}

test("jmp's start-up path imports no Node built-in and not citty", () => {
  // main.ts imports run.ts inside main(), for every command.
  const { files, external } = startupGraph([join(root, "src", "cli", "main.ts"), join(root, "src", "cli", "run.ts")]);
  // The walk reaches the command definitions (a check that it walks at all).
  expect(files).toContain(join("src", "cli", "command-meta.ts"));
  expect(files).toContain(join("src", "cli", "usage.ts"));
  expect(external).toEqual([]);
});

test("no command's module is on the start-up path: each loads when a command line enters it", () => {
  const { files } = startupGraph([join(root, "src", "cli", "main.ts"), join(root, "src", "cli", "run.ts")]);
  const commands = ["shell", "run-exporter", "lease", "exporter", "driver", "config", "admin", "controller", "router", "j", "completion", "demo", "verbs"];
  expect(files.filter((f) => commands.some((c) => f === join("src", "cli", `${c}.ts`)))).toEqual([]);
});

test("a j command loads neither Connect nor protobuf-es, nor node:http2 and node:net, nor the built-in drivers: its connection and the client classes", () => {
  // What src/cli/j.ts imports inside sessionCommand and runJ, and what loadRegistry (common.ts) imports inside it.
  const entries = [
    "src/cli/j.ts", "src/client/session-address.ts", "src/client/exporter-calls.ts", "src/cli/common.ts", "src/cli/run.ts",
    "src/driver/registry.ts", "drivers/clients.ts", "src/driver/loader.ts", "src/driver/search-path.ts",
  ].map((f) => join(root, f));
  const { files, external } = startupGraph(entries);
  // It walks the built-in clients (a check that it walks at all).
  expect(files).toContain(join("drivers", "power", "client.ts"));
  expect(files).toContain(join("src", "driver", "client.ts"));
  const heavy = [
    ...external.filter((e) => /^@connectrpc\/|^@bufbuild\//.test(e.spec)).map((e) => `${e.from} imports ${e.spec}`),
    ...files.filter((f) => f.startsWith(join("src", "gen"))),
  ];
  expect(heavy).toEqual([]);
  // Its connection is its own (common/h2-connection.ts on Bun's native socket): node:http2,
  // node:net and node:tls are 7 ms to load, and come only with a byte stream or a TCP session.
  expect(external.filter((e) => /^node:(http2|net|tls|crypto)$/.test(e.spec)).map((e) => `${e.from} imports ${e.spec}`)).toEqual([]);
  // Nor the built-in drivers: only their clients (drivers/clients.ts).
  expect(files.filter((f) => /^drivers\/[^/]+\/(driver|image|mock)\.ts$/.test(f))).toEqual([]);
});
