/** `-o table|json|yaml|name` for every listing, as upstream: a borderless table by default. */
import { stringify } from "yaml";
import { UserError } from "./errors.ts";
import { stdout } from "./stdout.ts";

export const OUTPUT_FORMATS = ["table", "json", "yaml", "name"] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

export function parseOutputFormat(value: string | undefined, allowed: readonly string[] = OUTPUT_FORMATS): OutputFormat {
  const v = (value ?? "table") as OutputFormat;
  if (!allowed.includes(v)) throw new UserError(`'-o' must be one of ${allowed.join(", ")}: got '${value}'`, 2);
  return v;
}

export interface Column<T> {
  header: string;
  value: (row: T) => string;
}

export function renderTable<T>(rows: T[], columns: Column<T>[]): string {
  if (rows.length === 0) return "No resources found.";
  const cells = rows.map((r) => columns.map((c) => c.value(r)));
  const widths = columns.map((c, i) => Math.max(c.header.length, ...cells.map((row) => row[i]!.length)));
  const line = (values: string[]) => values.map((v, i) => (i === values.length - 1 ? v : v.padEnd(widths[i]!))).join("   ").trimEnd();
  return [line(columns.map((c) => c.header)), ...cells.map(line)].join("\n");
}

/** Prints rows in the chosen format; `name` prints one name a line, for scripts. */
export function printList<T>(rows: T[], format: OutputFormat, columns: Column<T>[], name: (row: T) => string, model: (row: T) => unknown = (r) => r): void {
  switch (format) {
    case "json":
      console.log(JSON.stringify(rows.map(model), null, 2));
      break;
    case "yaml":
      stdout().write(stringify(rows.map(model)));
      break;
    case "name":
      for (const r of rows) console.log(name(r));
      break;
    default:
      console.log(renderTable(rows, columns));
  }
}
