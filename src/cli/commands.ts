/**
 * The jmp command tree. Its top level is metas (command-meta.ts) and loaders: a
 * command's module loads when a command line enters it, and each command imports
 * its role inside `run`, so `--help` and `version` stay fast.
 */
import { defineCommand } from "../common/command.ts";
import { META } from "./command-meta.ts";
import { lazyCommand } from "./tree.ts";
import { versionInfo } from "./version.ts";

const verb = (name: "create" | "get" | "remove" | "update") => () => import("./verbs.ts").then((m) => m[name]);

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
    shell: lazyCommand(META.shell, () => import("./shell.ts").then((m) => m.default)),
    run: lazyCommand(META.run, () => import("./run-exporter.ts").then((m) => m.default)),
    lease: lazyCommand(META.lease, () => import("./lease.ts").then((m) => m.default)),
    exporter: lazyCommand(META.exporter, () => import("./exporter.ts").then((m) => m.default)),
    driver: lazyCommand(META.driver, () => import("./driver.ts").then((m) => m.default)),
    config: lazyCommand(META.config, () => import("./config.ts").then((m) => m.default)),
    admin: lazyCommand(META.admin, () => import("./admin.ts").then((m) => m.default)),
    controller: lazyCommand(META.controller, () => import("./controller.ts").then((m) => m.default)),
    router: lazyCommand(META.router, () => import("./router.ts").then((m) => m.default)),
    j: lazyCommand(META.j, () => import("./j.ts").then((m) => m.default)),
    version: lazyCommand(META.version, () => import("./version.ts").then((m) => m.default)),
    completion: lazyCommand(META.completion, () => import("./completion.ts").then((m) => m.default)),
    demo: lazyCommand(META.demo, () => import("./demo.ts").then((m) => m.default)),
    create: lazyCommand(META.create, verb("create")),
    get: lazyCommand(META.get, verb("get")),
    delete: lazyCommand(META.delete, verb("remove")),
    update: lazyCommand(META.update, verb("update")),
  },
});
