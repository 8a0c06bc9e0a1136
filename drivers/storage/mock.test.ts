import { afterAll, afterEach, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { InvalidArgumentError } from "@jumpstarter/driver";
import { parseExporterConfig } from "../../src/common/exporter-config.ts";
import { serve, type Served } from "../../src/testing/serve.ts";
import { compress } from "../../test/fixtures/disk-image.ts";
import { FlasherClient, StorageMuxClient, StorageMuxFlasherClient } from "./client.ts";
import { MockFlasher, MockStorageMux, MockStorageMuxFlasher } from "./mock.ts";

const dir = mkdtempSync(join(tmpdir(), "jmp-mock-storage-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let served: Served | undefined;
afterEach(async () => {
  await served?.close();
  served = undefined;
});

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

test("upstream's type paths pick the mocks and their client classes", async () => {
  served = await serve(parseExporterConfig({
    export: {
      mux: { type: "jumpstarter_driver_opendal.driver.MockStorageMux" },
      storage: { type: "jumpstarter_driver_opendal.driver.MockStorageMuxFlasher" },
      flasher: { type: "jumpstarter_driver_opendal.driver.MockFlasher" },
    },
  }, "lab.yaml"));
  const c = served.client.children;
  expect(c.mux?.labels["jumpstarter.dev/client"]).toBe("jumpstarter_driver_opendal.client.StorageMuxClient");
  expect(c.mux).toBeInstanceOf(StorageMuxClient);
  expect(c.mux).not.toBeInstanceOf(StorageMuxFlasherClient);
  expect(c.storage).toBeInstanceOf(StorageMuxFlasherClient);
  expect(c.flasher).toBeInstanceOf(FlasherClient);
});

test("MockStorageMux keeps what is written in a temporary file and reads it back", async () => {
  const driver = new MockStorageMux({});
  served = await serve(driver);
  const client = served.client as StorageMuxClient;
  await client.host();
  await client.writeLocalFile(file("a.img", "hello storage"));
  expect(readFileSync(driver.path, "utf8")).toBe("hello storage");
  await client.readLocalFile(join(dir, "a.out"));
  expect(readFileSync(join(dir, "a.out"), "utf8")).toBe("hello storage");
  await client.dut();
  await client.off();
});

test("MockStorageMuxFlasher flashes and dumps; its temporary file goes at session end", async () => {
  const driver = new MockStorageMuxFlasher({});
  served = await serve(driver);
  const client = served.client as StorageMuxFlasherClient;
  expect(await client.flash(file("b.img", "flashed"))).toMatchObject({ written: 7 });
  await client.dump(join(dir, "b.out"));
  expect(readFileSync(join(dir, "b.out"), "utf8")).toBe("flashed");
  const e = await client.flash(file("c.img", "x"), { target: "boot" }).catch((x: Error) => x);
  expect(e).toBeInstanceOf(InvalidArgumentError);
  expect((e as Error).message).toBe("this storage has no targets, got target 'boot'");
  await served.close();
  expect(existsSync(driver.path)).toBe(false);
});

test("the flasher and the storage mux decompress xz and bz2 images too (through the runtime, like any driver)", async () => {
  const flasher = new MockFlasher({});
  const mux = new MockStorageMux({});
  const text = "a root filesystem ".repeat(10_000);
  const xz = join(dir, "rootfs.img.xz");
  const bz2 = join(dir, "boot.img.bz2");
  writeFileSync(xz, compress(new TextEncoder().encode(text), "xz"));
  writeFileSync(bz2, compress(new TextEncoder().encode("boot"), "bz2"));
  served = await serve(flasher);
  const results = await (served.client as FlasherClient).flash({ rootfs: xz, boot: bz2 });
  expect(results.rootfs).toMatchObject({ compression: "xz", codedBy: "exporter", written: text.length });
  expect(readFileSync(flasher.pathOf("rootfs"), "utf8")).toBe(text);
  expect(readFileSync(flasher.pathOf("boot"), "utf8")).toBe("boot");
  await served.close();
  served = await serve(mux);
  await (served.client as StorageMuxClient).writeLocalFile(xz);
  expect(readFileSync(mux.path, "utf8")).toBe(text);
});

test("MockFlasher keeps one file per target, 'default' when none is named", async () => {
  const driver = new MockFlasher({});
  served = await serve(driver);
  const client = served.client as FlasherClient;
  await client.flash(file("d.img", "default image"));
  await client.flash({ boot: file("boot.img", "boot image"), rootfs: file("rootfs.img", "root image") });
  expect(readFileSync(driver.pathOf(null), "utf8")).toBe("default image");
  expect(readFileSync(driver.pathOf("boot"), "utf8")).toBe("boot image");
  await client.dump(join(dir, "rootfs.out"), { target: "rootfs" });
  expect(readFileSync(join(dir, "rootfs.out"), "utf8")).toBe("root image");
  const missing = await client.dump(join(dir, "x.out"), { target: "nothing" }).catch((x: Error) => x);
  expect((missing as Error).message).toContain("nothing has been written to 'nothing' yet");
  const escape = await client.flash(file("e.img", "x"), { target: "../../etc/passwd" }).catch((x: Error) => x);
  expect(escape).toBeInstanceOf(InvalidArgumentError);
  expect((escape as Error).message).toContain("target must be a simple name");
});

test("j flash -t name:file flashes several targets; FILE and -t together are refused", async () => {
  const driver = new MockFlasher({});
  served = await serve(driver);
  const client = served.client as FlasherClient;
  const { runCommand } = await import("citty");
  const cli = client.cli();
  const flash = (cli.subCommands as Record<string, Parameters<typeof runCommand>[0]>)["flash"]!;
  // Through the CLI runner that `j` uses: it hands a repeatable flag every value.
  const { runCli } = await import("../../src/cli/run.ts");
  expect(await runCli(cli, "j", ["flash", "-t", `boot:${file("f.img", "one")}`, `--target=rootfs:${file("g.img", "two")}`])).toBe(0);
  expect(readFileSync(driver.pathOf("boot"), "utf8")).toBe("one");
  expect(readFileSync(driver.pathOf("rootfs"), "utf8")).toBe("two");
  const both = await runCommand(flash, { rawArgs: [file("h.img", "x"), "-t", "boot:x"] }).catch((x: Error) => x);
  expect((both as Error).message).toBe("give either FILE or --target name:file, not both");
  const bad = await runCommand(flash, { rawArgs: ["-t", "nocolon"] }).catch((x: Error) => x);
  expect((bad as Error).message).toBe("invalid target spec 'nocolon', expected name:file");
});
