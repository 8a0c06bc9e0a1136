/**
 * Thrown by `j <shell> <method>` when the remote command exits non-zero: `j` exits
 * with `exitCode` and prints nothing more, since the command's own stderr already
 * said what went wrong. Throwing (rather than process.exit) lets `j` flush its
 * output and close the session cleanly first.
 */
export class CommandExitError extends Error {
  override name = "CommandExitError";
  constructor(
    readonly exitCode: number,
    message = `the command exited with code ${exitCode}`,
  ) {
    super(message);
  }
}
