import { afterEach, expect, test } from "bun:test";
import { DutSim } from "../../drivers/dutsim/driver.ts";
import { PowerClient } from "../../drivers/power/client.ts";
import { serve, type Served } from "../testing/serve.ts";
import { openConsole } from "./console.ts";
import { DeadlineExceededError } from "../driver/errors.ts";

let served: Served | undefined;
afterEach(async () => served?.close());

const board = async () => {
  served = await serve(DutSim.create({ hostname: "unit-board", boot_time_ms: 100 }));
  return { power: served.client.child("power", PowerClient), console: served.client.child("console") };
};

test("expect, sendLine and the transcript on a simulated board's console", async () => {
  const { power, console: serial } = await board();
  await using con = await openConsole(serial, { timeout: 10_000 });
  await power.on();
  const login = await con.expect(/(\S+) login: $/);
  expect(login.groups[0]).toBe("unit-board");
  expect(login.before).toContain("Welcome to DutSim");
  await con.sendLine("root");
  await con.expect("# ");
  await con.sendLine("echo hello-$((1+1))");
  const m = await con.expect(["no-such-thing", /hello-\S+/]);
  expect(m.index).toBe(1);
  expect(con.transcript).toContain("unit-board login: root");
});

test("a failed expect says what it waited for and shows the last lines received", async () => {
  const { power, console: serial } = await board();
  const con = await openConsole(serial);
  await power.on();
  await con.expect("login:", { timeout: 10_000 });
  const error = await con.expect("never appears", { timeout: 300 }).catch((e: Error) => e);
  expect(error).toBeInstanceOf(DeadlineExceededError);
  expect((error as Error).message).toContain('waiting for "never appears"');
  expect((error as Error).message).toContain("unit-board login:");
  await con.close();
});
