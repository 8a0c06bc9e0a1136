/** `jmp exporter …`: the exporter noun (`jmp exporter run` = `jmp run`). */
import { defineCommand } from "citty";
import run from "./run-exporter.ts";

export default defineCommand({
  meta: { name: "exporter", description: "Run an exporter", alias: ["exporters", "e"] },
  subCommands: { run },
});
