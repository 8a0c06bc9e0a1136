import { afterEach, expect, test } from "bun:test";
import { FakeClock } from "../../src/common/fake-clock.ts";
import { DutSimBoard, type BoardOptions } from "./board.ts";
import { Transcript } from "./transcript.ts";

const boards: DutSimBoard[] = [];
afterEach(() => {
  for (const b of boards.splice(0)) b.powerOff();
});

function board(options: Partial<BoardOptions> = {}) {
  const out = new Transcript();
  const b = new DutSimBoard(
    { hostname: "dutsim", username: "root", arch: "aarch64", bootTimeMs: 30, ...options },
    (bytes) => out.append(bytes),
  );
  boards.push(b);
  const type = (text: string) => b.input(new TextEncoder().encode(text));
  return { b, out, type };
}

async function loggedIn(options: Partial<BoardOptions> = {}) {
  const sim = board(options);
  sim.b.powerOn();
  await sim.out.expect("login: ");
  sim.type("root\r");
  await sim.out.expect("# ");
  return sim;
}

test("power-on prints a boot log over the boot time, then the login prompt", async () => {
  const { b, out } = board({ bootTimeMs: 300 });
  const started = performance.now();
  b.powerOn();
  expect(b.state).toBe("booting");
  await out.expect("U-Boot");
  await out.expect(/\[\s+\d+\.\d{6}\] Booting Linux/);
  await out.expect("Welcome to DutSim\r\n");
  await out.expect("\r\ndutsim login: ");
  const took = performance.now() - started;
  expect(took).toBeGreaterThanOrEqual(250);
  expect(took).toBeLessThan(5000);
  expect(b.state).toBe("login");
  expect(out.all).not.toMatch(/[^\r]\n/);
});

test("login as the configured user leads to a root prompt; typed keys are echoed", async () => {
  const { out, type } = await loggedIn();
  expect(out.all).toContain("login: root\r\nroot@dutsim:~# ");
  type("whoami\r");
  expect(await out.expect("# ")).toBe("whoami\r\nroot\r\nroot@dutsim:~# ");
});

test("a wrong user name is refused and the login prompt comes back", async () => {
  const { b, out, type } = board();
  b.powerOn();
  await out.expect("login: ");
  type("admin\r");
  expect(await out.expect("login: ")).toBe("admin\r\n\r\nLogin incorrect\r\ndutsim login: ");
  type("\r");
  await out.expect("login: ");
  expect(b.state).toBe("login");
});

test("with a password, login asks for it without echoing it", async () => {
  const { b, out, type } = board({ password: "s3cret", username: "pi", hostname: "rpi4" });
  b.powerOn();
  await out.expect("rpi4 login: ");
  type("pi\r");
  await out.expect("Password: ");
  type("wrong\r");
  expect(await out.expect("login: ")).toBe("\r\n\r\nLogin incorrect\r\nrpi4 login: ");
  type("pi\r");
  await out.expect("Password: ");
  type("s3cret\r");
  expect(await out.expect("$ ")).toBe("\r\npi@rpi4:~$ ");
  expect(out.all).not.toContain("s3cret");
  expect(out.all).not.toContain("wrong");
});

test("uname reports the hostname and the configured architecture", async () => {
  const { out, type } = await loggedIn({ hostname: "board7", arch: "riscv64" });
  type("uname -a\r");
  const reply = await out.expect("# ");
  expect(reply).toMatch(/^uname -a\r\nLinux board7 6\.6\.0-dutsim #1 SMP PREEMPT .* riscv64 GNU\/Linux\r\n/);
  type("uname\r");
  expect(await out.expect("# ")).toStartWith("uname\r\nLinux\r\n");
  type("uname -mn\r");
  expect(await out.expect("# ")).toStartWith("uname -mn\r\nboard7 riscv64\r\n");
  type("uname -q\r");
  expect(await out.expect("# ")).toContain("uname: invalid option -- 'q'");
});

test("echo handles quotes, escapes and $?; true and false set the status", async () => {
  const { out, type } = await loggedIn();
  const run = async (line: string) => {
    type(`${line}\r`);
    const reply = await out.expect("root@dutsim:~# ");
    return reply.slice(line.length + 2, -"root@dutsim:~# ".length);
  };
  expect(await run(`echo hello   world`)).toBe("hello world\r\n");
  expect(await run(`echo 'a  b' "c  d" e\\ f`)).toBe("a  b c  d e f\r\n");
  expect(await run(`echo "it's" '$?' "\\"q\\""`)).toBe(`it's $? "q"\r\n`);
  expect(await run(`echo -n no newline`)).toBe("no newline");
  expect(await run(`false`)).toBe("");
  expect(await run(`echo $?`)).toBe("1\r\n");
  expect(await run(`true`)).toBe("");
  expect(await run(`echo "status=$?" $USER $HOME`)).toBe("status=0 root /root\r\n");
  expect(await run(`echo 'open`)).toBe("sh: syntax error: unterminated quoted string\r\n");
});

test("hostname, whoami, cat /proc/uptime; unknown commands are not found", async () => {
  const { out, type } = await loggedIn({ bootTimeMs: 200 });
  type("hostname\r");
  expect(await out.expect("# ")).toBe("hostname\r\ndutsim\r\nroot@dutsim:~# ");
  type("cat /proc/uptime\r");
  const [, up, idle] = /cat \/proc\/uptime\r\n(\d+\.\d\d) (\d+\.\d\d)\r\n/.exec(await out.expect("# "))!;
  expect(Number(up)).toBeGreaterThanOrEqual(0.15);
  expect(Number(up)).toBeLessThan(60);
  expect(Number(idle)).toBeGreaterThanOrEqual(0);
  type("cat /nope\r");
  expect(await out.expect("# ")).toContain("cat: /nope: No such file or directory\r\n");
  type("frobnicate --now\r");
  expect(await out.expect("# ")).toBe("frobnicate --now\r\nsh: frobnicate: not found\r\nroot@dutsim:~# ");
  type("echo $?\r");
  expect(await out.expect("# ")).toContain("\r\n127\r\n");
});

test("backspace erases the last character on screen and in the line", async () => {
  const { out, type } = await loggedIn();
  type("whoamx\x7fi\r");
  expect(await out.expect("# ")).toBe("whoamx\b \bi\r\nroot\r\nroot@dutsim:~# ");
  type("\x7f\x7fhostname\r");
  expect(await out.expect("# ")).toBe("hostname\r\ndutsim\r\nroot@dutsim:~# ");
});

test("Enter as \\r, \\n or \\r\\n is one Enter; Ctrl-C drops the line", async () => {
  const { out, type } = await loggedIn();
  type("whoami\r\n");
  expect(await out.expect("# ")).toBe("whoami\r\nroot\r\nroot@dutsim:~# ");
  type("hostname\n");
  expect(await out.expect("# ")).toBe("hostname\r\ndutsim\r\nroot@dutsim:~# ");
  type("reboot\x03");
  expect(await out.expect("# ")).toBe("reboot^C\r\nroot@dutsim:~# ");
  type("echo $?\r");
  expect(await out.expect("# ")).toContain("\r\n130\r\n");
});

test("exit, logout and Ctrl-D go back to the login prompt", async () => {
  const { b, out, type } = await loggedIn();
  for (const leave of ["exit\r", "logout\r", "\x04"]) {
    type(leave);
    await out.expect("dutsim login: ");
    expect(b.state).toBe("login");
    type("root\r");
    await out.expect("# ");
  }
});

test("reboot prints a shutdown line and boots again to the login prompt", async () => {
  const { b, out, type } = await loggedIn();
  type("reboot\r");
  expect(await out.expect("U-Boot")).toMatch(/^reboot\r\n\[\s+\d+\.\d{6}\] reboot: Restarting system\r\n/);
  expect(b.state).toBe("booting");
  // Keys typed while the board boots reach nobody.
  type("whoami\r");
  expect(await out.expect("login: ")).not.toContain("whoami");
  type("root\r");
  await out.expect("# ");
});

/** Moves the fake clock on 10 ms at a time, letting the boot run in between, until `text` has been printed. */
async function runUntilPrinted(clock: FakeClock, out: Transcript, text: string): Promise<void> {
  for (let ms = 0; !out.all.includes(text); ms += 10) {
    if (ms > 60_000) throw new Error(`'${text}' not printed after ${ms} ms of board time; printed: ${JSON.stringify(out.all)}`);
    clock.advance(10);
    await new Promise((r) => setImmediate(r));
  }
}

test("power-off silences the board at once and ignores input; power-on boots again", async () => {
  const clock = new FakeClock(0);
  const { b, out, type } = board({ bootTimeMs: 300, clock });
  b.powerOn();
  await runUntilPrinted(clock, out, "Starting kernel");
  b.powerOff();
  expect(b.state).toBe("off");
  expect(b.uptime).toBe(0);
  // Nothing of the interrupted boot is still due, however long the board stays off.
  expect(clock.armed).toBe(0);
  const silent = out.all;
  type("root\r");
  clock.advance(600);
  expect(out.all).toBe(silent);
  b.powerOn();
  await runUntilPrinted(clock, out, "Welcome to DutSim");
  expect(await out.expect("login: ")).toMatch(/^[^]*\r\nU-Boot [^]*Welcome to DutSim[^]*login: $/);
  expect(out.all.match(/U-Boot 20/g)).toHaveLength(2);
  expect(out.all.match(/Welcome to DutSim/g)).toHaveLength(1);
});

test("power-on while on changes nothing", async () => {
  const { b, out, type } = await loggedIn();
  b.powerOn();
  type("whoami\r");
  expect(await out.expect("# ")).toBe("whoami\r\nroot\r\nroot@dutsim:~# ");
  expect(b.state).toBe("shell");
});
