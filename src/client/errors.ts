/**
 * The one translation, on the client side, of what went wrong between us and a
 * controller or an exporter into a line a person can act on. A refused call keeps
 * the peer's own words; a failure of the connection itself (a refused port, a
 * local TLS check, TLS spoken to a plain HTTP/2 port or the reverse, silence)
 * says that nothing answered and what to check. The CLI turns the result into an
 * exit code, the library throws it.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { UserError } from "../common/errors.ts";

/** Who we were talking to, for the message, and where its TLS trust is configured. */
export interface Peer {
  /** "the controller", "the exporter". */
  what: string;
  address: string;
  /** Where to give a CA, e.g. "tls.ca in the client config (or --ca when creating it)". */
  caHint?: string;
  /** The switch between TLS and plain HTTP/2, when there is one (`--tls-grpc-insecure`). */
  plainHint?: string;
}

/** A failed controller or session call: a person's message, the gRPC code, and the exit code. */
export class PeerError extends UserError {
  override name = "PeerError";
  constructor(message: string, readonly code: Code, options?: ErrorOptions) {
    super(message, 1, options);
  }
}

/** TLS verification failures: OpenSSL's codes as node reports them. */
const CERT_CODES = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE", "UNABLE_TO_GET_ISSUER_CERT", "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN", "DEPTH_ZERO_SELF_SIGNED_CERT", "CERT_SIGNATURE_FAILURE", "CERT_UNTRUSTED",
  "CERT_HAS_EXPIRED", "CERT_NOT_YET_VALID", "ERR_TLS_CERT_ALTNAME_INVALID", "HOSTNAME_MISMATCH",
]);

function causes(e: unknown): { code?: string; message: string }[] {
  const out: { code?: string; message: string }[] = [];
  for (let c: unknown = e, depth = 0; c && depth < 5; c = (c as { cause?: unknown }).cause, depth++) {
    const err = c as { code?: unknown; message?: unknown };
    out.push({ code: typeof err.code === "string" ? err.code : undefined, message: String(err.message ?? c) });
  }
  return out;
}

/**
 * What went wrong with the connection itself, as the reason after "cannot reach
 * …: ", or undefined when the peer answered (its answer is then the message).
 */
export function connectionProblem(e: unknown, peer: Peer): string | undefined {
  const chain = causes(e);
  const find = (test: (c: { code?: string; message: string }) => boolean) => chain.find(test);
  const cert = find((c) => c.code !== undefined && CERT_CODES.has(c.code));
  if (cert) {
    return `its TLS certificate failed the check made here, on this machine (${cert.message})` +
      (peer.caHint ? `; give its CA with ${peer.caHint}` : "");
  }
  if (find((c) => c.code === "ERR_SSL_WRONG_VERSION_NUMBER" || /wrong version number|packet length too long|unknown protocol|http request/i.test(c.message))) {
    return "it does not speak TLS (it answered in plain text)" + (peer.plainHint ? `; for a plain HTTP/2 (h2c) port use ${peer.plainHint}` : "");
  }
  if (find((c) => c.code === "ECONNREFUSED")) return `connection refused (is ${peer.what} running, and is that its port?)`;
  if (find((c) => c.code === "ENOTFOUND" || c.code === "EAI_AGAIN")) return "cannot resolve the host name";
  if (find((c) => c.code === "ENOENT")) return "no such socket (is the session still running?)";
  if (find((c) => c.code === "EHOSTUNREACH" || c.code === "ENETUNREACH")) return "the host is unreachable";
  const silent = find((c) => c.code === "ETIMEDOUT");
  if (silent) return `${silent.message.startsWith("no answer") ? silent.message.replace(/ from \S+/, "") : "no answer in time"} (is that the right address and port, and is ${peer.what} up?)`;
  if (find((c) => c.code === "ECONNRESET" || c.code === "EPIPE")) {
    // A TLS port that gets plain HTTP/2 answers with an alert and a close, or, when
    // it closes before reading what was sent, with a reset: the hint holds for both.
    return "the connection was cut" + (peer.plainHint ? ` (if that port wants TLS, leave out ${peer.plainHint})` : "");
  }
  if (find((c) => /NGHTTP2_PROTOCOL_ERROR|CANCEL \(0x8\)|Protocol error|ERR_HTTP2_ERROR|ERR_HTTP2_SESSION_ERROR|ERR_HTTP2_STREAM_ERROR/i.test(`${c.code ?? ""} ${c.message}`))) {
    // Both a peer that went away mid-call and a port that speaks something else end so.
    return `the connection ended without an HTTP/2 answer: ${peer.what} stopped, or that port is not a jmp or Jumpstarter one` +
      (peer.plainHint ? ` (or it wants TLS: then leave out ${peer.plainHint})` : "");
  }
  return undefined;
}

/** Any failure of a call to `peer` as one PeerError (a UserError already translated passes through). */
export function peerError(e: unknown, peer: Peer): Error {
  if (e instanceof UserError) return e;
  const err = ConnectError.from(e);
  const problem = connectionProblem(e, peer);
  if (problem) return new PeerError(`cannot reach ${peer.what} at ${peer.address}: ${problem}`, Code.Unavailable, { cause: e });
  if (err.code === Code.DeadlineExceeded && err.rawMessage === "the operation timed out") {
    return new PeerError(`${peer.what} at ${peer.address} did not answer in time`, err.code, { cause: e });
  }
  if (err.code === Code.Canceled) return new PeerError(`the call to ${peer.what} at ${peer.address} was cancelled`, err.code, { cause: e });
  // A connection that failed in a way not named above: say so, with the node error.
  if (err.cause !== undefined) return new PeerError(`cannot reach ${peer.what} at ${peer.address}: ${err.rawMessage}`, Code.Unavailable, { cause: e });
  // The peer answered with a status: its own words are the message.
  switch (err.code) {
    case Code.Unauthenticated:
    case Code.PermissionDenied:
    case Code.NotFound:
    case Code.InvalidArgument:
    case Code.FailedPrecondition:
    case Code.AlreadyExists:
    case Code.ResourceExhausted:
    case Code.Unavailable:
    case Code.DeadlineExceeded:
      return new PeerError(err.rawMessage, err.code, { cause: e });
    default:
      return new PeerError(`${peer.what} at ${peer.address} answered: ${err.rawMessage} (${Code[err.code]})`, err.code, { cause: e });
  }
}

/** Codes that say the peer could not be reached (or not in time): worth waiting and trying again. */
export function isTransient(e: unknown): boolean {
  const code = e instanceof PeerError ? e.code : e instanceof ConnectError ? e.code : undefined;
  return code === Code.Unavailable || code === Code.DeadlineExceeded;
}

/**
 * A peer that is there but restarting: the port refused or cut the connection, or the
 * peer said UNAVAILABLE itself (a controller shutting down). Not a silent one (no
 * answer in time): that is more often a wrong address, and waiting longer only hides it.
 */
export function looksRestarting(e: unknown): boolean {
  if (!isTransient(e)) return false;
  if ((e instanceof PeerError || e instanceof ConnectError) && e.code === Code.DeadlineExceeded) return false;
  return !causes(e).some((c) => c.code === "ETIMEDOUT");
}

