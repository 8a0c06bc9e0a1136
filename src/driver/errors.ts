/**
 * The one error type at the driver/RPC boundary. A driver throws any error; the
 * exporter turns it into a gRPC status with toConnectError (connect-errors.ts: the
 * same mapping as upstream's Python exceptions), and the client turns the status
 * back into a typed {@link DriverError} with {@link errorFromStatus}.
 *
 * Free of Connect and protobuf-es: driver clients, and `j` with them, import this,
 * and loading those runtimes was a third of a `j` command's time.
 */

/** gRPC status codes (the same numbers as Connect's Code enum). */
export enum Code {
  Canceled = 1,
  Unknown = 2,
  InvalidArgument = 3,
  DeadlineExceeded = 4,
  NotFound = 5,
  AlreadyExists = 6,
  PermissionDenied = 7,
  ResourceExhausted = 8,
  FailedPrecondition = 9,
  Aborted = 10,
  OutOfRange = 11,
  Unimplemented = 12,
  Internal = 13,
  Unavailable = 14,
  DataLoss = 15,
  Unauthenticated = 16,
}

export class DriverError extends Error {
  override name = "DriverError";
  /** Raised for a status the exporter sent (errorFromStatus), not by this process. */
  fromExporter = false;
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

/**
 * The typed error a client raises for a call that ended with gRPC status `code`
 * and `message`, prefixed with `what` (the method). `cause` is the transport's own error.
 */
export function errorFromStatus(code: number, message: string, what?: string, cause?: unknown): DriverError {
  const text = what ? `${what}: ${message}` : message;
  const options = { cause };
  let e: DriverError;
  switch (code) {
    case Code.Unimplemented:
      e = new NotImplementedDriverError(text, options);
      break;
    case Code.NotFound:
      e = new MethodNotFoundError(text, options);
      break;
    case Code.InvalidArgument:
      e = new InvalidArgumentError(text, options);
      break;
    case Code.DeadlineExceeded:
      e = new DeadlineExceededError(text, options);
      break;
    case Code.Unavailable:
      e = new UnavailableError(text, options);
      break;
    case Code.FailedPrecondition:
      e = new ExporterNotReadyError(text, options);
      break;
    default:
      e = new DriverError(text, code in Code ? code : Code.Unknown, options);
  }
  e.fromExporter = true;
  return e;
}
