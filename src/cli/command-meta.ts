/**
 * What `jmp --help` lists of each top-level command: its name, description and
 * aliases. Kept apart from the commands themselves so that listing them, or finding
 * the one a word names, loads none of their modules (commands.ts); each module
 * takes its meta from here, so the words are written once.
 */
import type { CommandMeta } from "citty";

export const META = {
  shell: { name: "shell", description: "Spawn a shell (or run a command) with access to an exporter's drivers", alias: ["s", "sh"] },
  run: { name: "run", description: "Run an exporter: direct mode with --tls-grpc-listener, else register with its controller" },
  lease: { name: "lease", description: "Leases on exporters", alias: ["leases", "l"] },
  exporter: { name: "exporter", description: "Run an exporter, or list the exporters of the controller", alias: ["exporters", "e"] },
  driver: { name: "driver", description: "Drivers", alias: ["drivers"] },
  config: { name: "config", description: "Manage configs", alias: "conf" },
  admin: { name: "admin", description: "Administer the controller: clients, exporters, leases, maintenance, access policies, the audit log" },
  controller: { name: "controller", description: "Run the controller" },
  router: { name: "router", description: "Run a router" },
  j: { name: "j", description: "The driver CLI of the current session (same as the 'j' command)" },
  version: { name: "version", description: "Print the version", alias: "v" },
  completion: { name: "completion", description: "Print a shell completion script (bash, zsh or fish) for jmp and j" },
  demo: { name: "demo", description: "A scripted tour of a simulated lab: a controller, an exporter with a simulated board, a lease, power, console" },
  create: { name: "create", description: "Create a resource (upstream spelling of 'jmp lease create')" },
  get: { name: "get", description: "List or show resources (upstream spelling)", alias: "g" },
  delete: { name: "delete", description: "Release leases (upstream spelling of 'jmp lease delete')", alias: ["d", "del"] },
  update: { name: "update", description: "Change a lease (upstream spelling of 'jmp lease update')" },
} satisfies Record<string, CommandMeta>;
