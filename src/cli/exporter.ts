/** `jmp exporter …`: run one (`jmp exporter run` = `jmp run`) or list them. */
import { defineCommand } from "../common/command.ts";
import list from "./exporter-list.ts";
import { exporterInstall as install } from "./install.ts";
import run from "./run-exporter.ts";

export default defineCommand({
  meta: { name: "exporter", description: "Run an exporter, or list the exporters of the controller", alias: ["exporters", "e"] },
  subCommands: { run, list, install },
});
