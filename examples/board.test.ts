/**
 * An example board test suite, run with plain `bun test`:
 *   jmp shell --exporter-config examples/sim-board.yaml -- bun test examples/   (local)
 *   jmp shell -l board=sim -- bun test examples/                                 (a leased board)
 *   bun test examples/                                     (leases by itself with your client config)
 * BOARD_SELECTOR picks the board when leasing (default board=sim).
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { type Board, lease, openConsole, PowerClient, SerialClient } from "jmp/testing";

// A real board takes its time to boot; the default 5 s is for unit tests.
setDefaultTimeout(120_000);

const drivers = { power: PowerClient, console: SerialClient };
let board: Board<typeof drivers>;

beforeAll(async () => {
  board = await lease({ selector: process.env.BOARD_SELECTOR ?? "board=sim", duration: "15m", drivers });
});

afterAll(async () => {
  await board?.power.off();
  await board?.close();
});

/** Power on from off and log in; returns the console, ready at a shell prompt. */
async function boot() {
  await board.power.off();
  const con = await openConsole(board.console, { timeout: 60_000 });
  await board.power.on();
  await con.expect("login:");
  await con.sendLine(process.env.BOARD_USER ?? "root");
  await con.expect(/[#$] $/);
  return con;
}

test("boots to a login prompt and runs a command", async () => {
  await using con = await boot();
  await con.sendLine("uname -a");
  const out = await con.expect(/[#$] $/);
  expect(out.before).toMatch(/^Linux \S+ /m);
});

test("comes back after a power cycle", async () => {
  await using con = await boot();
  await board.power.cycle(0.5);
  await con.expect("login:");
  await con.sendLine("root");
  await con.expect(/[#$] $/);
  await con.sendLine("cat /proc/uptime");
  const out = await con.expect(/[#$] $/);
  const uptime = Number(out.before.trim().split(/\s+/).at(-2));
  expect(uptime).toBeLessThan(60);
});
