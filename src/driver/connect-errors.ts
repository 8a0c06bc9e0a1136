/**
 * errors.ts's mapping on Connect's side: what a thrown value becomes as a status
 * the exporter sends (the same mapping as upstream's Python exceptions), and the
 * typed error a Connect client raises for a failed call. Apart from errors.ts so
 * that what imports only the error classes does not load Connect.
 */
import { type Code as ConnectCode, ConnectError } from "@connectrpc/connect";
import { Code, DriverError, errorFromStatus } from "./errors.ts";

// Node's errno codes that Python raises as ConnectionError subclasses.
const CONNECTION_ERRNOS = new Set(["ECONNREFUSED", "ECONNRESET", "ECONNABORTED", "EPIPE", "ENOTCONN", "EHOSTUNREACH", "ENETUNREACH"]);

/** What a thrown value means on the wire. */
export function toConnectError(e: unknown): ConnectError {
  if (e instanceof ConnectError) return e;
  if (e instanceof DriverError) return new ConnectError(e.message, e.code as number as ConnectCode, undefined, undefined, e);
  if (e instanceof Error) {
    const errno = (e as NodeJS.ErrnoException).code;
    let code: Code = Code.Unknown;
    if (e instanceof TypeError || e instanceof RangeError) code = Code.InvalidArgument;
    else if (e.name === "TimeoutError") code = Code.DeadlineExceeded;
    else if (e.name === "AbortError") code = Code.Canceled;
    else if (typeof errno === "string" && CONNECTION_ERRNOS.has(errno)) code = Code.Unavailable;
    else if (typeof errno === "string" && errno.startsWith("E") && errno === errno.toUpperCase()) code = Code.Internal;
    return new ConnectError(e.message, code as number as ConnectCode, undefined, undefined, e);
  }
  return new ConnectError(String(e), Code.Unknown as number as ConnectCode);
}

/** The typed error a client raises for a failed call. */
export function fromConnectError(e: unknown, what?: string): Error {
  if (!(e instanceof ConnectError)) return e instanceof Error ? e : new Error(String(e));
  return errorFromStatus(e.code, e.rawMessage, what, e);
}
