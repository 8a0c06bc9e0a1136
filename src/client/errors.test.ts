/**
 * connectionProblem: the reason after "cannot reach …: " for what went wrong with a
 * connection, as node errors (with their causes) report it.
 */
import { describe, expect, test } from "bun:test";
import { connectionProblem, type Peer } from "./errors.ts";

const errno = (code: string, message = code) => Object.assign(new Error(message), { code });
const wrapped = (cause: Error) => new Error("[unavailable] failed", { cause });
const direct: Peer = { what: "the exporter", address: "127.0.0.1:1", plainHint: "--tls-grpc-insecure" };
const controller: Peer = { what: "the controller", address: "ctl:443" };

describe("connectionProblem", () => {
  test("a reset (a TLS port closing on plain HTTP/2 before reading it) names the flag where there is one", () => {
    expect(connectionProblem(wrapped(errno("ECONNRESET")), direct)).toBe("the connection was cut (if that port wants TLS, leave out --tls-grpc-insecure)");
    expect(connectionProblem(wrapped(errno("EPIPE")), controller)).toBe("the connection was cut");
  });

  test("plain text where TLS was expected, a refused port, an answer (no problem)", () => {
    expect(connectionProblem(wrapped(errno("ERR_SSL_WRONG_VERSION_NUMBER", "wrong version number")), direct)).toBe(
      "it does not speak TLS (it answered in plain text); for a plain HTTP/2 (h2c) port use --tls-grpc-insecure",
    );
    expect(connectionProblem(wrapped(errno("ECONNREFUSED")), controller)).toBe("connection refused (is the controller running, and is that its port?)");
    expect(connectionProblem(new Error("lease not found"), controller)).toBeUndefined();
  });
});
