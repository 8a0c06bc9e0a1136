/** The command line itself: help, version, errors, bad configs — run as users run it. */
import { afterAll, describe, expect, test } from "bun:test";
import { J, JMP, jmp, tempDir } from "./helpers.ts";

const dir = tempDir();
afterAll(() => dir.remove());

test("jmp --help lists the commands and exits 0", async () => {
  const r = await jmp(["--help"]);
  expect(r.code).toBe(0);
  for (const noun of ["shell", "run", "exporter", "driver", "config", "version", "completion"]) expect(r.stdout).toContain(noun);
});

test("jmp version names the version and commit; -o json parses", async () => {
  const text = await jmp(["version"]);
  expect(text.code).toBe(0);
  expect(text.stdout).toMatch(/^jmp \d+\.\d+\.\d+ \([0-9a-f]{7,}|unknown/);
  const json = JSON.parse((await jmp(["version", "-o", "json"])).stdout);
  expect(json.version).toMatch(/^\d+\.\d+\.\d+/);
  expect(json.platform).toBe(`${process.platform}-${process.arch}`);
});

test("unknown commands and flags are rejected with a hint and exit 2", async () => {
  const cmd = await jmp(["shel"]);
  expect(cmd.code).toBe(2);
  expect(cmd.stderr).toContain("unknown command 'shel' for 'jmp' (did you mean 'shell'?)");
  const flag = await jmp(["shell", "--exporter-confg", "x.yaml"]);
  expect(flag.code).toBe(2);
  expect(flag.stderr).toContain("did you mean --exporter-config?");
});

test("jmp driver list shows upstream type paths; -o name and -o json work", async () => {
  const table = await jmp(["driver", "list"]);
  expect(table.code).toBe(0);
  expect(table.stdout).toContain("jumpstarter_driver_power.driver.MockPower");
  const names = (await jmp(["driver", "list", "-o", "name"])).stdout.trim().split("\n");
  expect(names).toContain("MockPower");
  const json = JSON.parse((await jmp(["driver", "list", "-o", "json"])).stdout);
  expect(json.find((d: { name: string }) => d.name === "MockPower").client).toBe("jumpstarter_driver_power.client.PowerClient");
  const bad = await jmp(["driver", "list", "-o", "xml"]);
  expect(bad.code).toBe(2);
  expect(bad.stderr).toContain("'-o' must be one of table, json, yaml, name");
});

test("j outside a shell says what is missing", async () => {
  const env = { JUMPSTARTER_HOST: "" };
  const r = await jmp(["power", "on"], { exe: J, env });
  expect(r.code).toBe(2);
  expect(r.stderr).toContain("run it inside 'jmp shell'");
  const same = await jmp(["j", "power", "on"], { env });
  expect(same.stderr).toBe(r.stderr);
});

test("j reports an unreachable session clearly", async () => {
  const r = await jmp(["power", "on"], { exe: J, env: { JUMPSTARTER_HOST: `${dir.path}/nothing.sock` } });
  expect(r.code).toBe(1);
  expect(r.stderr).toContain(`cannot reach the exporter at socket ${dir.path}/nothing.sock`);
});

describe("bad exporter configs fail once, at load, naming file and key", () => {
  const cases: [string, string, string][] = [
    ["unknown type", "export:\n  power:\n    type: MockPowr\n", "export.power.type: unknown driver type 'MockPowr'; did you mean 'MockPower'?"],
    ["unknown config key", "export:\n  power:\n    type: MockPower\n    config:\n      volts: 5\n", "export.power.config.volts: unknown key"],
    ["YAML syntax", "export:\n  power: [\n", "line 3, column 1: invalid YAML"],
    ["dangling ref", "export:\n  p:\n    ref: nope.x\n", "export.p.ref: no driver at 'nope.x'"],
    ["misspelt top-level key", "exprt:\n  p: {}\n", "exprt: unknown key (did you mean 'export'?"],
    ["node with nothing", "export:\n  p: {}\n", "export.p: expected 'type' (a driver), 'ref' (another entry) or 'children'"],
    ["mistyped value", "export:\n  p:\n    type: 5\n", "export.p.type: expected a non-empty string, got number 5"],
    ["empty file", "", "the file is empty"],
  ];
  for (const [name, yaml, message] of cases) {
    test(name, async () => {
      const file = dir.file(`${name.replace(/ /g, "-")}.yaml`, yaml);
      const r = await jmp(["shell", "--exporter-config", file, "--", "true"]);
      expect(r.code).toBe(2);
      expect(r.stderr.startsWith(`Error: ${file}: ${message}`)).toBe(true);
      expect(r.stderr.split("\n").filter(Boolean)).toHaveLength(1);
      expect(r.stderr).not.toContain("    at ");
    });
  }

  test("missing file", async () => {
    const r = await jmp(["shell", "--exporter-config", `${dir.path}/none.yaml`, "--", "true"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${dir.path}/none.yaml: no such file`);
  });

  test("unknown alias names where it looked", async () => {
    const r = await jmp(["shell", "--exporter", "lab9", "--", "true"], { env: { JMP_CLIENT_CONFIG_HOME: dir.path } });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${dir.path}/exporters/lab9.yaml`);
  });
});

/** A local-mode session on `export`, running `script` in sh with `j` on its PATH (and $JMP). */
async function inSession(exportYaml: string, script: string, env: Record<string, string> = {}, shellArgs: string[] = []) {
  const config = dir.file(`session-${Bun.hash(exportYaml)}.yaml`, `apiVersion: jumpstarter.dev/v1alpha1\nkind: ExporterConfig\nmetadata:\n  name: cli\n${exportYaml}`);
  return jmp(["shell", "--exporter-config", config, ...shellArgs, "--", "sh", "-c", script], { env: { JMP: JMP, ...env } });
}

const POWER = "export:\n  power:\n    type: MockPower\n";

describe("exit codes: 0 done, 1 failed, 2 usage error, everywhere", () => {
  test("jmp: a bare command group, an unknown command, a missing argument or value, an extra argument", async () => {
    const cases: [string[], string][] = [
      [[], "USAGE jmp"],
      [["lease"], "USAGE jmp lease"],
      [["config", "client"], "USAGE jmp config client"],
      [["leas", "list"], "unknown command 'leas' for 'jmp' (did you mean 'lease'?)"],
      [["lease", "lst"], "unknown command 'lst' for 'jmp lease' (did you mean 'list'?)"],
      [["lease", "get"], "'jmp lease get' needs LEASE (lease name)"],
      [["lease", "create", "-l", "a=b"], "'jmp lease create' needs --duration (how long"],
      [["lease", "create", "-l", "a=b", "--duration"], "'--duration' needs a value (how long"],
      [["lease", "create", "--duration", "--tag", "a=b"], "'--duration' needs a value"],
      [["version", "extra"], "'jmp version' takes no argument 'extra'"],
      [["driver", "list", "-o", "xml"], "'-o' must be one of table, json, yaml, name"],
      [["--log-level", "loud", "version"], "'--log-level' must be one of debug, info, warn, error"],
    ];
    for (const [args, message] of cases) {
      const r = await jmp(args);
      expect({ args, code: r.code }).toEqual({ args, code: 2 });
      expect(r.stdout).toBe("");
      expect(r.stderr).toContain(message);
    }
    for (const args of [["--help"], ["lease", "--help"], ["lease", "get", "--help"], ["version"]]) expect((await jmp(args)).code).toBe(0);
  });

  test("j: the same rule inside a session", async () => {
    const r = await inSession(POWER, [
      "j >/dev/null 2>&1; echo bare=$?",
      "j power >/dev/null 2>&1; echo group=$?",
      "j powr 2>&1; echo typo=$?",
      "j power cycle --wait soon 2>&1; echo value=$?",
      "j power read -n x 2>&1; echo count=$?",
      "j power read --every 2 2>&1; echo flag=$?",
      "j power on; echo ok=$?",
      "j --help >/dev/null; echo help=$?",
    ].join("\n"));
    expect(r.stdout.split("\n").filter(Boolean)).toEqual([
      "bare=2",
      "group=2",
      "Error: unknown command 'powr' for 'j' (did you mean 'power'?); see 'j --help'",
      "typo=2",
      "Error: --wait must be a number of seconds, got 'soon'",
      "value=2",
      "Error: --count must be a whole number, got 'x'",
      "count=2",
      "Error: unknown option '--every' for 'j power read'; see 'j power read --help'",
      "flag=2",
      "ok=0",
      "help=0",
    ]);
  });
});

describe("help", () => {
  const ESC = "\x1b";
  // A terminal-like environment: no NO_COLOR, nothing that would turn colours off by itself.
  const colourful = { NO_COLOR: "", FORCE_COLOR: "", CI: "", TEST: "", TERM: "xterm-256color" };

  test("no colour codes through a pipe: --help, a bare group's help, j --help, the demo", async () => {
    for (const args of [["--help"], ["lease", "create", "--help"], ["run", "--help"]]) {
      const r = await jmp(args, { env: colourful });
      expect(r.code).toBe(0);
      expect(r.stdout).toContain("USAGE");
      expect(r.stdout).not.toContain(ESC);
    }
    const bare = await jmp(["lease"], { env: colourful });
    expect(bare.stderr).toContain("USAGE");
    expect(bare.stderr).not.toContain(ESC);
    const j = await inSession(POWER, "j --help && j power read --help && j power read -n 1", colourful);
    expect(j.code).toBe(0);
    expect(j.stdout).toContain("USAGE j power read");
    expect(j.stdout + j.stderr).not.toContain(ESC);
    const demo = await jmp(["demo", "--local"], { env: colourful, timeoutMs: 30_000 });
    expect(demo.code).toBe(0);
    expect(demo.stdout).toContain("$ j power on");
    expect(demo.stdout).not.toContain(ESC);
  });

  test("colours on a terminal, unless NO_COLOR is set; FORCE_COLOR colours a pipe", async () => {
    const onTerminal = (env: Record<string, string>) => jmp(["script", "-qec", `${JMP} lease --help`, "/dev/null"], { exe: "/usr/bin/env", env });
    expect((await onTerminal(colourful)).stdout).toContain(`${ESC}[1mUSAGE`);
    const off = await onTerminal({ ...colourful, NO_COLOR: "1" });
    expect(off.stdout).toContain("USAGE jmp lease");
    expect(off.stdout).not.toContain(ESC);
    expect((await jmp(["lease", "--help"], { env: { ...colourful, FORCE_COLOR: "1" } })).stdout).toContain(`${ESC}[1mUSAGE`);
    expect((await jmp(["lease", "--help"], { env: { ...colourful, FORCE_COLOR: "1", NO_COLOR: "1" } })).stdout).not.toContain(ESC);
  });

  /** The column where each described row's text starts, and rows that start elsewhere. */
  function descriptionColumns(help: string): { columns: Set<number>; stray: string[] } {
    const columns = new Set<number>();
    const stray: string[] = [];
    const rows: string[] = [];
    let inTable = false;
    for (const line of help.split("\n")) {
      if (/^(ARGUMENTS|OPTIONS|COMMANDS)$/.test(line)) inTable = true;
      else if (!line.startsWith(" ")) inTable = false;
      else if (inTable) rows.push(line);
    }
    for (const line of rows) {
      const m = /^( {2,6}\S.*?\S {2,})\S/.exec(line);
      if (m) columns.add(m[1]!.length);
    }
    const [column] = columns;
    // Wrapped lines continue under the description.
    for (const line of rows) if (!/^ {2,6}\S/.test(line) && line.search(/\S/) !== column) stray.push(line);
    return { columns, stray };
  }

  test("in every --help of the tree, descriptions start at one column", async () => {
    const seen: string[] = [];
    const queue: string[][] = [[]];
    while (queue.length) {
      const batch = queue.splice(0, 8);
      const helps = await Promise.all(batch.map((path) => jmp([...path, "--help"])));
      batch.forEach((path, i) => {
        const r = helps[i]!;
        expect({ path, code: r.code, stderr: r.stderr }).toEqual({ path, code: 0, stderr: "" });
        seen.push(path.join(" "));
        const { columns, stray } = descriptionColumns(r.stdout);
        expect({ path, columns: [...columns], stray }).toEqual({ path, columns: [[...columns][0]!], stray: [] });
        const commands = r.stdout.split("COMMANDS\n")[1]?.split("\n\n")[0] ?? "";
        for (const m of commands.matchAll(/^ {2}([\w-]+)/gm)) {
          // `jmp j` is the session's tree: it needs a session (tested with j below).
          if (!(path.length === 0 && m[1] === "j")) queue.push([...path, m[1]!]);
        }
      });
    }
    expect(seen).toContain("config client create");
    expect(seen).toContain("get leases");
    expect(seen.length).toBeGreaterThan(30);
    const j = await inSession(POWER, "j --help; j power --help; j power read --help");
    expect(descriptionColumns(j.stdout.split("USAGE j power read")[1]!).stray).toEqual([]);
    for (const page of j.stdout.split(/\n(?=\S.*\n\nUSAGE)/)) expect(descriptionColumns(page).columns.size).toBe(1);
  });

  test("flags are shown as typed, repeatable ones say so", async () => {
    const r = await jmp(["run", "--help"]);
    expect(r.stdout).toMatch(/^ {6}--exporter-config FILE {2,}the exporter config file$/m);
    expect(r.stdout).toMatch(/^ {6}--drivers-dir DIR {2,}load driver files from DIR too; .* \(repeatable\)$/ms);
    expect((await jmp(["lease", "create", "--help"])).stdout).toMatch(/^ {2}-l, --selector SELECTOR {2,}label selector/m);
  });
});

describe("repeatable flags collect every value", () => {
  test("--drivers-dir: drivers from both folders reach the exporter and j", async () => {
    const driver = (name: string) =>
      `import { Driver, exported } from "@jumpstarter/driver";\nexport class ${name} extends Driver {\n  static client = "x.${name}";\n  async hello() { return "${name} here"; }\n}\nexported(${name}.prototype.hello);\n`;
    const a = tempDir();
    const b = tempDir();
    try {
      a.file("alpha.js", driver("Alpha"));
      b.file("beta.js", driver("Beta"));
      const r = await inSession("export:\n  alpha:\n    type: alpha.Alpha\n  beta:\n    type: beta.Beta\n", "j alpha hello && j beta hello", { JMP_DRIVERS_DIR: "" }, ["--drivers-dir", a.path, `--drivers-dir=${b.path}`]);
      expect(r.stderr).toBe("");
      expect(r.stdout).toBe("Alpha here\nBeta here\n");
    } finally {
      a.remove();
      b.remove();
    }
  });

  test("j shell METHOD -e K=V -e K=V, and what follows --", async () => {
    const r = await inSession(
      "export:\n  shell:\n    type: jumpstarter_driver_shell.driver.Shell\n    config:\n      methods:\n        show: 'echo \"$FIRST $SECOND [$*]\"'\n",
      "j shell show -e FIRST=1 --env=SECOND=2 x && j shell show -- -la y",
    );
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("1 2 [x]\n  [-la y]\n");
  });

  test("j flasher flash -t NAME:FILE -t NAME:FILE writes both targets", async () => {
    const one = dir.file("one.img", "first image");
    const two = dir.file("two.img", "second image");
    const out = dir.path;
    const r = await inSession(
      "export:\n  flasher:\n    type: MockFlasher\n",
      `j flasher flash -t boot:${one} --target=rootfs:${two} && j flasher dump --target boot ${out}/boot.out && j flasher dump --target rootfs ${out}/rootfs.out`,
    );
    expect(r.code).toBe(0);
    expect(await Bun.file(`${out}/boot.out`).text()).toBe("first image");
    expect(await Bun.file(`${out}/rootfs.out`).text()).toBe("second image");
  });
});

test("j power read -n N prints N readings, reading again as the driver's stream ends", async () => {
  const r = await inSession(POWER, "j power read -n 3 -i 0; echo; j power read -n 1; echo; j power read");
  expect(r.stderr).toBe("");
  const blocks = r.stdout.trim().split("\n\n").map((b) => b.split("\n"));
  const [off, on] = ["voltage=0 V  current=0 A  apparent_power=0 VA", "voltage=5 V  current=2 A  apparent_power=10 VA"];
  expect(blocks).toEqual([[off, on, off], [off], [off, on]]);
});

describe("completion", () => {
  /**
   * What bash offers for `line` (the cursor at its end): the words split as readline
   * splits them (at blanks, and at '=' and ':' of COMP_WORDBREAKS), then the
   * script's function, as `complete -F` would call it.
   */
  async function bashOffers(line: string, env: Record<string, string> = {}): Promise<string[]> {
    const words = line.split(/\s+/).flatMap((w) => w.split(/([=:]+)/)).filter((w, i, all) => w !== "" || i === all.length - 1);
    const program = [
      (await jmp(["completion", "bash"])).stdout,
      `COMP_LINE=${shellQuote(line)}; COMP_POINT=\${#COMP_LINE}`,
      `COMP_WORDS=(${words.map(shellQuote).join(" ")}); COMP_CWORD=${words.length - 1}`,
      "_jmp_complete",
      `printf '%s\\n' "\${COMPREPLY[@]}"`,
    ].join("\n");
    const r = await jmp(["-c", program], { exe: "bash", env });
    expect(r.stderr).toBe("");
    return r.stdout.split("\n").filter(Boolean);
  }
  const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

  test("the scripts register for jmp and j; bash's parses", async () => {
    const bash = (await jmp(["completion", "bash"])).stdout;
    const registered = await jmp(["-c", `${bash}\ncomplete -p jmp j`], { exe: "bash" });
    expect(registered.stdout).toBe("complete -o default -F _jmp_complete jmp\ncomplete -o default -F _jmp_complete j\n");
    expect((await jmp(["completion", "zsh"])).stdout).toContain("compdef _jmp jmp j");
    expect((await jmp(["completion", "fish"])).stdout).toContain("complete -c j -f -a '(__jmp_complete)'");
    const tcsh = await jmp(["completion", "tcsh"]);
    expect(tcsh.code).toBe(2);
    expect(tcsh.stderr).toBe("Error: 'completion' takes bash, zsh or fish: got 'tcsh'\n");
  });

  test("commands and aliases, flags, and the values of -o, --log-level and the shell", async () => {
    expect(await bashOffers(`${JMP} le`)).toEqual(["lease", "leases"]);
    expect(await bashOffers(`${JMP} lease `)).toEqual(["create", "list", "get", "update", "delete", "del", "release", "logs"]);
    expect(await bashOffers(`${JMP} lease create --d`)).toEqual(["--duration"]);
    expect(await bashOffers(`${JMP} lease create --tag a=b --t`)).toEqual(["--tag"]);
    expect(await bashOffers(`${JMP} lease list --all --a`)).toEqual(["--all-clients"]);
    expect(await bashOffers(`${JMP} lease list -o `)).toEqual(["table", "json", "yaml", "name"]);
    expect(await bashOffers(`${JMP} get leases --output=y`)).toEqual(["yaml"]);
    expect(await bashOffers(`${JMP} version -o `)).toEqual(["text", "json", "yaml"]);
    expect(await bashOffers(`${JMP} --log-level `)).toEqual(["debug", "info", "warn", "error"]);
    expect(await bashOffers(`${JMP} completion `)).toEqual(["bash", "zsh", "fish"]);
  });

  test("client and exporter config aliases for --client, --exporter and config commands", async () => {
    const home = tempDir();
    try {
      const { mkdirSync, writeFileSync } = await import("node:fs");
      mkdirSync(`${home.path}/clients`);
      mkdirSync(`${home.path}/exporters`);
      for (const alias of ["alice", "alina", "bob"]) writeFileSync(`${home.path}/clients/${alias}.yaml`, "endpoint: x:1\ntoken: t\n");
      for (const alias of ["pi-1", "pi-2"]) writeFileSync(`${home.path}/exporters/${alias}.yaml`, "export: {}\n");
      const env = { JMP_CLIENT_CONFIG_HOME: home.path };
      expect(await bashOffers(`${JMP} lease list --client al`, env)).toEqual(["alice", "alina"]);
      expect(await bashOffers(`${JMP} exporter list --client=b`, env)).toEqual(["bob"]);
      expect(await bashOffers(`${JMP} run --exporter `, env)).toEqual(["pi-1", "pi-2"]);
      expect(await bashOffers(`${JMP} shell --exporter pi`, env)).toEqual(["pi-1", "pi-2"]);
      expect(await bashOffers(`${JMP} config client use `, env)).toEqual(["alice", "alina", "bob"]);
      expect(await bashOffers(`${JMP} config exporter delete p`, env)).toEqual(["pi-1", "pi-2"]);
    } finally {
      home.remove();
    }
  });

  test("lease names give up quickly and quietly when the controller does not answer", async () => {
    const { createServer } = await import("node:net");
    const silent = createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const home = tempDir();
    try {
      const { port } = silent.address() as { port: number };
      const { mkdirSync, writeFileSync } = await import("node:fs");
      mkdirSync(`${home.path}/clients`);
      writeFileSync(`${home.path}/clients/alice.yaml`, `apiVersion: jumpstarter.dev/v1alpha1\nkind: ClientConfig\nmetadata:\n  name: alice\nendpoint: 127.0.0.1:${port}\ntoken: t\n`);
      const started = performance.now();
      const r = await jmp(["__complete", "lease", "get", "--client", "alice", ""], { env: { JMP_CLIENT_CONFIG_HOME: home.path } });
      expect(performance.now() - started).toBeLessThan(4000);
      expect(r).toEqual({ code: 0, stdout: "", stderr: "" });
    } finally {
      silent.close();
      home.remove();
    }
  });

  test("the j tree of the current session, as j and as jmp j", async () => {
    const r = await inSession(POWER, [
      `"$JMP" __complete j ""`,
      "echo --",
      `j __complete power ""`,
      "echo --",
      `j __complete power read -`,
      "echo --",
      `bash ${dir.file("complete-j.bash", 'eval "$("$JMP" completion bash)"\nCOMP_LINE="j power c"; COMP_POINT=${#COMP_LINE}; COMP_WORDS=(j power c); COMP_CWORD=2\n_jmp_complete; echo "${COMPREPLY[@]}"\n')}`,
    ].join("\n"));
    expect(r.stderr).toBe("");
    expect(r.stdout.split("--\n").map((b) => b.trim().split("\n"))).toEqual([
      ["power"],
      ["on", "off", "cycle", "read"],
      ["--count", "--interval", "--log-level", "--log-format", "--help"],
      ["cycle"],
    ]);
    // Outside a session there is no tree to offer, and no error either.
    expect(await jmp(["__complete", "j", ""], { env: { JUMPSTARTER_HOST: "" } })).toEqual({ code: 0, stdout: "", stderr: "" });
  });
});
