/**
 * `j http` and `j tftp` inside `jmp shell` (the built dist/jmp): start the
 * servers, upload a file with `put`, and fetch it back with curl and tftp-hpa.
 */
import { afterAll, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { JMP, tempDir } from "../../test/helpers.ts";

const HAVE_CLIENTS = Bun.which("curl") !== null && Bun.which("tftp") !== null;
const dir = tempDir("jmp-http-cli-");
afterAll(() => dir.remove());

test.skipIf(!HAVE_CLIENTS)("j http and j tftp: start, put, url/address, served to real clients", async () => {
  dir.file("kernel.img", "KERNEL-IMAGE\n");
  const config = dir.file("lab.yaml", `apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata:
  namespace: default
  name: boot-servers
export:
  http:
    type: jumpstarter_driver_http.driver.HttpServer
    config:
      root_dir: ${join(dir.path, "www")}
      host: 127.0.0.1
      port: 0
  tftp:
    type: Tftp
    config:
      root_dir: ${join(dir.path, "tftpboot")}
      host: 127.0.0.1
      port: 0
`);
  const script = [
    "j http start",
    "j http put kernel.img boot/kernel.img",
    "echo url=$(j http url)",
    "curl -sS $(j http url)/boot/kernel.img",
    "j tftp start",
    "j tftp put kernel.img",
    "echo address=$(j tftp address)",
    "tftp -m octet $(j tftp address | tr : ' ') -c get kernel.img fetched.img",
    "cat fetched.img",
  ].join(" && ");
  const proc = Bun.spawn([JMP, "shell", "--exporter-config", config, "--", "sh", "-c", script], {
    cwd: dir.path, env: { ...process.env, NO_COLOR: "1" }, stdout: "pipe", stderr: "pipe",
  });
  const timer = setTimeout(() => proc.kill("SIGKILL"), 25_000);
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  expect(stderr).toBe("");
  expect(code).toBe(0);
  // put prints the URL (http) or the name stored (tftp); then the fetched contents.
  expect(stdout).toMatch(
    /^(http:\/\/127\.0\.0\.1:\d+)\/boot\/kernel\.img\nurl=\1\nKERNEL-IMAGE\nkernel\.img\naddress=127\.0\.0\.1:\d+\nKERNEL-IMAGE\n$/,
  );
  expect(readFileSync(join(dir.path, "fetched.img"), "utf8")).toBe("KERNEL-IMAGE\n");
  // The uploads were this session's: gone with it.
  expect(existsSync(join(dir.path, "www", "boot"))).toBe(false);
  expect(existsSync(join(dir.path, "tftpboot", "kernel.img"))).toBe(false);
}, 30_000);
