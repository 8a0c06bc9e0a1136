/** Driver call through the router (distributed mode, one machine) vs. the same call on a local session. */
import { MockPower } from "../drivers/power/driver.ts";
import type { PowerClient } from "../drivers/power/client.ts";
import { serve } from "../src/testing/serve.ts";
import type { BenchLab } from "./lab.ts";
import { callFigures, type Options, type Result } from "./lib.ts";

export async function routerCall({ quick }: Options, lab: BenchLab): Promise<Result[]> {
  const local = await serve<PowerClient>(new MockPower({}));
  try {
    return await callFigures("router call: power.on()", () => lab.board.power.on(), () => local.client.on(), {
      calls: quick ? 400 : 5000, rounds: quick ? 2 : 5, floorNote: "the same call on a local session (serve())",
    });
  } finally {
    await local.close();
  }
}
