/** The Store contract (contract.ts) on SQLite: the peer is a second handle on the same file, as a second process would open it. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { storeContract } from "./contract.ts";
import { SqliteStore } from "./sqlite.ts";

let dir = "";
let open: SqliteStore[] = [];

storeContract("SQLite", {
  async open() {
    dir = mkdtempSync(join(tmpdir(), "jmp-contract-"));
    open = [SqliteStore.open(dir), SqliteStore.open(dir)];
    return { store: open[0]!, peer: open[1]! };
  },
  async close() {
    for (const s of open) s.close();
    rmSync(dir, { recursive: true, force: true });
  },
});
