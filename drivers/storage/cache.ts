/**
 * Dropping a file's pages from the kernel's cache, so that reading it back after a
 * write checks what reached the disk rather than what is still in memory. Uses
 * libc's posix_fadvise through `bun:ffi`, loaded on first use (Linux, glibc).
 */

// POSIX_FADV_DONTNEED is 4 on every Linux architecture.
const POSIX_FADV_DONTNEED = 4;

type Fadvise = (fd: number, offset: number, length: number, advice: number) => number;
let fadvise: Promise<Fadvise> | undefined;

async function load(): Promise<Fadvise> {
  const ffi = await import("bun:ffi");
  const { symbols } = ffi.dlopen("libc.so.6", {
    posix_fadvise: { args: ["i32", "i64", "i64", "i32"], returns: "i32" },
  });
  return (fd, offset, length, advice) => symbols.posix_fadvise(fd, offset, length, advice);
}

/**
 * Asks the kernel to forget the cached pages of `fd` (which must be synced first,
 * or dirty pages stay). Returns false when it could not, e.g. without glibc.
 */
export async function dropCache(fd: number): Promise<boolean> {
  try {
    fadvise ??= load();
    return (await fadvise)(fd, 0, 0, POSIX_FADV_DONTNEED) === 0;
  } catch {
    return false;
  }
}
