/** `jmp exporter …`: run one (`jmp exporter run` = `jmp run`) or list them. */
import { defineCommand } from "../common/command.ts";
import { META } from "./command-meta.ts";
import list from "./exporter-list.ts";
import { exporterInstall as install } from "./install.ts";
import run from "./run-exporter.ts";

export default defineCommand({
  meta: META.exporter,
  subCommands: { run, list, install },
});
