/**
 * Errors of the controller's state layer. Each carries the gRPC/Connect status code the
 * RPC layer answers with, so the mapping is 1:1 and no caller parses message text
 * (upstream returns many of these as UNKNOWN strings; clients then grep them).
 */
import { Code } from "@connectrpc/connect";
import { enabled, type Logger } from "../common/log.ts";

export type ControllerCode =
  | Code.NotFound
  | Code.AlreadyExists
  | Code.InvalidArgument
  | Code.FailedPrecondition
  | Code.PermissionDenied
  | Code.Unavailable
  | Code.Internal;

export class ControllerError extends Error {
  override name = "ControllerError";
  constructor(
    readonly code: ControllerCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export const notFound = (message: string) => new ControllerError(Code.NotFound, message);
export const alreadyExists = (message: string) => new ControllerError(Code.AlreadyExists, message);
export const invalidArgument = (message: string, cause?: unknown) =>
  new ControllerError(Code.InvalidArgument, message, cause === undefined ? undefined : { cause });
export const failedPrecondition = (message: string) => new ControllerError(Code.FailedPrecondition, message);
/** The store cannot be reached now (the Kubernetes API server is down): worth retrying. */
export const unavailable = (message: string) => new ControllerError(Code.Unavailable, message);
/**
 * The controller cannot do this through no fault of the caller, and the caller may
 * know why (its Kubernetes role lacks a permission): the message names what an admin
 * must fix, and nothing else of the controller's insides.
 */
export const internal = (message: string) => new ControllerError(Code.Internal, message);

/**
 * Logs an error nobody expected (a bug, a failing disk): its message on one line at
 * error level, and its stack only at debug level, a line each, since a log line
 * flattened with literal `\n`s helps no one.
 */
export function logUnexpected(log: Logger, what: string, e: unknown): void {
  const err = e instanceof Error ? e : new Error(String(e));
  log.error(`${what}: ${err.message.replace(/\s*\n\s*/g, " ")}`);
  if (!enabled("debug") || !err.stack) return;
  // The frames only: the message, which the stack repeats first, may span lines too.
  for (const line of err.stack.split("\n").map((l) => l.trim()).filter((l) => l.startsWith("at "))) log.debug(`  ${line}`);
}
