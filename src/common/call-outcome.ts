/** For tests: how a call or stream ended, as one comparable string. */
import { Code, ConnectError } from "@connectrpc/connect";

/** "OK", or the status code's name and the message ("Unavailable: the controller is shutting down"). */
export async function outcome(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "OK";
  } catch (e) {
    const err = ConnectError.from(e);
    return `${Code[err.code]}: ${err.rawMessage}`;
  }
}
