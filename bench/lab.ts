/**
 * Distributed mode on one machine, shared by the router, stream and footprint
 * benchmarks: the tests' Lab (a real `jmp controller run`, exporters under
 * `jmp run --exporter`), one exporter with MockPower and EchoNetwork leased
 * through the router, one idle exporter serving the demo's simulated board, and
 * one with an image-file storage to flash through the router.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { NetworkClient } from "../drivers/network/client.ts";
import { PowerClient } from "../drivers/power/client.ts";
import { lease, type Board } from "../src/api/session.ts";
import { DEMO_CONFIG } from "../src/cli/demo.ts";
import { Lab, type Proc } from "../test/distributed/lab.ts";

const drivers = { power: PowerClient, echo: NetworkClient };
export type BenchBoard = Board<typeof drivers>;

export interface BenchLab {
  lab: Lab;
  /** The exporter behind `board` (its process, for RSS). */
  exporter: Proc;
  /** The idle exporter serving the simulated board. */
  simBoard: Proc;
  /** The image file the `bench=flash` exporter's storage writes. */
  flashDisk: string;
  board: BenchBoard;
  close(): Promise<void>;
}

/** The exporters serve their metrics, as a lab that scrapes them would (the cost is in every figure). */
const METRICS = ["--metrics-listen", "127.0.0.1:0"];

async function addExporter(lab: Lab, name: string, exportTree: unknown): Promise<Proc> {
  const file = await lab.addExporter(name, { bench: name });
  const doc = parse(readFileSync(file, "utf8")) as Record<string, unknown>;
  doc.export = exportTree;
  writeFileSync(file, stringify(doc));
  return lab.runExporter(name, METRICS);
}

export async function startLab(): Promise<BenchLab> {
  const lab = await Lab.start();
  try {
    await lab.addClient("bench");
    const exporter = await addExporter(lab, "router", {
      power: { type: "jumpstarter_driver_power.driver.MockPower" },
      echo: { type: "jumpstarter_driver_network.driver.EchoNetwork" },
    });
    const simBoard = await addExporter(lab, "sim", (parse(DEMO_CONFIG) as { export: unknown }).export);
    const flashDisk = join(lab.dir.path, "flash-disk.img");
    await addExporter(lab, "flash", { storage: { type: "ImageStorage", config: { path: flashDisk } } });
    // lease() reads the client config from the environment, as a user's script does.
    process.env.JMP_CLIENT_CONFIG_HOME = lab.env.JMP_CLIENT_CONFIG_HOME;
    const board = await lease({ selector: "bench=router", client: "bench", drivers, timeout: 30_000 });
    return {
      lab, exporter, simBoard, flashDisk, board,
      close: async () => {
        await board.close();
        await lab.close();
      },
    };
  } catch (e) {
    await lab.close();
    throw e;
  }
}
