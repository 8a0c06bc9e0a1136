/**
 * The one error type at the driver/RPC boundary. A driver throws any error; the
 * exporter turns it into a gRPC status with {@link toConnectError} (the same mapping
 * as upstream's Python exceptions), and the client turns the status back into a
 * typed {@link DriverError} with {@link fromConnectError}.
 */
import { Code, ConnectError } from "@connectrpc/connect";

export { Code };

export class DriverError extends Error {
  override name = "DriverError";
  constructor(
    message: string,
    readonly code: Code = Code.Unknown,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** The driver does not implement this (upstream: NotImplementedError). */
export class NotImplementedDriverError extends DriverError {
  override name = "NotImplementedDriverError";
  constructor(message = "not implemented", options?: ErrorOptions) {
    super(message, Code.Unimplemented, options);
  }
}

/** An argument is wrong (upstream: ValueError). */
export class InvalidArgumentError extends DriverError {
  override name = "InvalidArgumentError";
  constructor(message: string, options?: ErrorOptions) {
    super(message, Code.InvalidArgument, options);
  }
}

/** Waiting took too long (upstream: TimeoutError). */
export class DeadlineExceededError extends DriverError {
  override name = "DeadlineExceededError";
  constructor(message: string, options?: ErrorOptions) {
    super(message, Code.DeadlineExceeded, options);
  }
}

/** The device or a connection is not reachable (upstream: ConnectionError). */
export class UnavailableError extends DriverError {
  override name = "UnavailableError";
  constructor(message: string, options?: ErrorOptions) {
    super(message, Code.Unavailable, options);
  }
}

/** The exporter refuses calls until the lease is ready. */
export class ExporterNotReadyError extends DriverError {
  override name = "ExporterNotReadyError";
  constructor(message: string, options?: ErrorOptions) {
    super(message, Code.FailedPrecondition, options);
  }
}

/** No such driver or no such exported method. */
export class MethodNotFoundError extends DriverError {
  override name = "MethodNotFoundError";
  constructor(message: string, options?: ErrorOptions) {
    super(message, Code.NotFound, options);
  }
}

// Node's errno codes that Python raises as ConnectionError subclasses.
const CONNECTION_ERRNOS = new Set(["ECONNREFUSED", "ECONNRESET", "ECONNABORTED", "EPIPE", "ENOTCONN", "EHOSTUNREACH", "ENETUNREACH"]);

/** What a thrown value means on the wire. */
export function toConnectError(e: unknown): ConnectError {
  if (e instanceof ConnectError) return e;
  if (e instanceof DriverError) return new ConnectError(e.message, e.code, undefined, undefined, e);
  if (e instanceof Error) {
    const errno = (e as NodeJS.ErrnoException).code;
    let code = Code.Unknown;
    if (e instanceof TypeError || e instanceof RangeError) code = Code.InvalidArgument;
    else if (e.name === "TimeoutError") code = Code.DeadlineExceeded;
    else if (e.name === "AbortError") code = Code.Canceled;
    else if (typeof errno === "string" && CONNECTION_ERRNOS.has(errno)) code = Code.Unavailable;
    else if (typeof errno === "string" && errno.startsWith("E") && errno === errno.toUpperCase()) code = Code.Internal;
    return new ConnectError(e.message, code, undefined, undefined, e);
  }
  return new ConnectError(String(e), Code.Unknown);
}

/** The typed error a client raises for a failed call. */
export function fromConnectError(e: unknown, what?: string): Error {
  if (!(e instanceof ConnectError)) return e instanceof Error ? e : new Error(String(e));
  const message = what ? `${what}: ${e.rawMessage}` : e.rawMessage;
  switch (e.code) {
    case Code.Unimplemented:
      return new NotImplementedDriverError(message, { cause: e });
    case Code.NotFound:
      return new MethodNotFoundError(message, { cause: e });
    case Code.InvalidArgument:
      return new InvalidArgumentError(message, { cause: e });
    case Code.DeadlineExceeded:
      return new DeadlineExceededError(message, { cause: e });
    case Code.Unavailable:
      return new UnavailableError(message, { cause: e });
    case Code.FailedPrecondition:
      return new ExporterNotReadyError(message, { cause: e });
    default:
      return new DriverError(message, e.code, { cause: e });
  }
}
