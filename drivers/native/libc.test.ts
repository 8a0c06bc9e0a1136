/**
 * libc.ts: its numbers and struct offsets against the C headers (a program compiled
 * here, and for arm64 run under qemu: ../testing/c-headers.ts), and its calls on
 * plain files (the GPIO and USB driver tests use them on simulated devices).
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describeOnTargets } from "../testing/c-headers.ts";
import {
  closeFd, DIRENT, F, ioctl, listDir, O, openPath, readFd, readLink, readText, SEEK_END, setNonBlocking, sizeOfFd, SyscallError,
} from "./libc.ts";

const PROGRAM = String.raw`
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>

int main(void) {
  printf("{\"open\":[%d,%d,%d,%d,%d,%d,%d],", O_RDONLY, O_WRONLY, O_RDWR, O_NOCTTY, O_NONBLOCK, O_CLOEXEC, O_EXCL);
  printf("\"fcntl\":[%d,%d],\"seek_end\":%d,", F_GETFL, F_SETFL, SEEK_END);
  printf("\"dirent\":[%zu,%zu,%d,%d],", offsetof(struct dirent64, d_type), offsetof(struct dirent64, d_name), DT_DIR, DT_LNK);
  printf("\"pollfd\":[%zu,%zu,%d]}\n", sizeof(struct pollfd), offsetof(struct pollfd, events), POLLIN);
  return 0;
}
`;

const dir = mkdtempSync(join(tmpdir(), "jmp-libc-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describeOnTargets("the numbers match the headers", PROGRAM, (program) => {
  test("open and fcntl flags, SEEK_END, struct dirent64 and struct pollfd", () => {
    expect(program.build()).toBe("");
    const k = JSON.parse(program.run());
    expect(k.open).toEqual([O.RDONLY, O.WRONLY, O.RDWR, O.NOCTTY, O.NONBLOCK, O.CLOEXEC, O.EXCL]);
    expect(k.fcntl).toEqual([F.GETFL, F.SETFL]);
    expect(k.seek_end).toBe(SEEK_END);
    expect(k.dirent).toEqual([DIRENT.TYPE_OFFSET, DIRENT.NAME_OFFSET, DIRENT.DT_DIR, DIRENT.DT_LNK]);
    // waitReadable builds a pollfd as two 32-bit words: fd, then events (POLLIN) in the low half.
    expect(k.pollfd).toEqual([8, 4, 1]);
  });
});

describe("calls on plain files", () => {
  test("a file's text and size; a directory's entries with their kinds; a link's target", () => {
    const tree = join(dir, "tree");
    mkdirSync(join(tree, "sub"), { recursive: true });
    writeFileSync(join(tree, "busnum"), "1\n");
    symlinkSync("../sub", join(tree, "parent"));
    expect(readText(join(tree, "busnum"))).toBe("1");
    expect(readText(join(tree, "absent"))).toBeUndefined();
    expect(listDir(tree)).toEqual([
      { name: "busnum", dir: false, link: false },
      { name: "parent", dir: false, link: true },
      { name: "sub", dir: true, link: false },
    ]);
    expect(listDir(join(tree, "absent"))).toEqual([]);
    expect(readLink(join(tree, "parent"))).toBe("../sub");
    expect(readLink(join(tree, "busnum"))).toBeUndefined();

    const fd = openPath(join(tree, "busnum"), O.RDONLY);
    try {
      expect(sizeOfFd(fd, "size")).toBe(2);
      setNonBlocking(fd);
      // sizeOfFd left the offset at the end.
      expect(readFd(fd, new Uint8Array(8), "read")).toBe(0);
    } finally {
      closeFd(fd);
    }
  });

  test("failures carry the errno's name, and say it in words", () => {
    const absent = (() => {
      try {
        openPath(join(dir, "absent"), O.RDONLY);
      } catch (e) {
        return e as SyscallError;
      }
    })();
    expect(absent).toBeInstanceOf(SyscallError);
    expect(absent!.code).toBe("ENOENT");
    expect(absent!.message).toBe(`open ${join(dir, "absent")}: no such file or directory (ENOENT)`);

    const file = join(dir, "plain");
    writeFileSync(file, "");
    const fd = openPath(file, O.RDONLY);
    try {
      // A plain file answers no device ioctl.
      expect(() => ioctl(fd, 0x8044b401, new Uint8Array(68), "GPIO_GET_CHIPINFO_IOCTL")).toThrow("GPIO_GET_CHIPINFO_IOCTL: ENOTTY");
    } finally {
      closeFd(fd);
    }
  });
});
