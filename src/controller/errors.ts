/**
 * Errors of the controller's state layer. Each carries the gRPC/Connect status code the
 * RPC layer answers with, so the mapping is 1:1 and no caller parses message text
 * (upstream returns many of these as UNKNOWN strings; clients then grep them).
 */
import { Code } from "@connectrpc/connect";

export type ControllerCode =
  | Code.NotFound
  | Code.AlreadyExists
  | Code.InvalidArgument
  | Code.FailedPrecondition
  | Code.PermissionDenied;

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
