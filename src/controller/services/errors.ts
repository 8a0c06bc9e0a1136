/** Controller errors → gRPC statuses: the one place where the state's errors meet the wire. */
import { Code, ConnectError } from "@connectrpc/connect";
import { getLogger } from "../../common/log.ts";
import { UserError } from "../../common/errors.ts";
import { ControllerError, logUnexpected } from "../errors.ts";

const log = getLogger("controller");

/** What every open stream and waiting call ends with when the controller stops: a status worth retrying. */
export function shuttingDown(): ConnectError {
  return new ConnectError("the controller is shutting down", Code.Unavailable);
}

export function rpcError(e: unknown): ConnectError {
  if (e instanceof ConnectError) return e;
  if (e instanceof ControllerError) return new ConnectError(e.message, e.code);
  if (e instanceof UserError) return new ConnectError(e.message, Code.InvalidArgument);
  logUnexpected(log, "internal error", e);
  return new ConnectError("internal error in the controller (see its log)", Code.Internal);
}

/** Runs a handler body, mapping whatever it throws. */
export async function rpc<T>(fn: () => T | Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw rpcError(e);
  }
}
