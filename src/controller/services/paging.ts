/** Opaque page tokens over a list ordered the same way on every call. */
import { Code, ConnectError } from "@connectrpc/connect";

const MAX_PAGE = 1000;

export function pageOf<T>(items: T[], pageSize: number, pageToken: string, what: string): { items: T[]; next: string } {
  let offset = 0;
  if (pageToken) {
    try {
      const parsed = JSON.parse(Buffer.from(pageToken, "base64url").toString()) as { o?: unknown };
      if (typeof parsed.o !== "number" || !Number.isInteger(parsed.o) || parsed.o < 0) throw new Error();
      offset = parsed.o;
    } catch {
      throw new ConnectError(`${what}: invalid page_token`, Code.InvalidArgument);
    }
  }
  if (pageSize < 0) throw new ConnectError(`${what}: page_size must not be negative`, Code.InvalidArgument);
  const size = pageSize === 0 ? MAX_PAGE : Math.min(pageSize, MAX_PAGE);
  const page = items.slice(offset, offset + size);
  const nextOffset = offset + page.length;
  return { items: page, next: nextOffset < items.length ? Buffer.from(JSON.stringify({ o: nextOffset })).toString("base64url") : "" };
}
