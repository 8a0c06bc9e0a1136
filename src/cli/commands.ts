/** The jmp command tree: small definitions that import their role inside `run`. */
import { defineCommand } from "../common/command.ts";
import admin from "./admin.ts";
import completion from "./completion.ts";
import config from "./config.ts";
import controller from "./controller.ts";
import demo from "./demo.ts";
import driver from "./driver.ts";
import exporter from "./exporter.ts";
import j from "./j.ts";
import lease from "./lease.ts";
import router from "./router.ts";
import run from "./run-exporter.ts";
import shell from "./shell.ts";
import { create, get, remove, update } from "./verbs.ts";
import version, { versionInfo } from "./version.ts";

export const rootCommand = defineCommand({
  meta: {
    name: "jmp",
    description: "Share a lab of real and virtual devices for testing (Jumpstarter-compatible)",
    version: versionInfo().version,
  },
  args: {
    logLevel: { type: "string", description: "debug, info, warn or error" },
    logFormat: { type: "string", description: "auto, text or json" },
  },
  subCommands: {
    shell, run, lease, exporter, driver, config, admin, controller, router, j, version, completion, demo,
    create, get, delete: remove, update,
  },
});
