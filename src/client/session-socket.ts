/**
 * The socket an HTTP/2 client connects to a session with (see session-address.ts),
 * as node:net or node:tls opens it: Connect's transport (the library, `jmp shell`)
 * and `j`'s TCP sessions. Apart from session-address.ts because
 * node:net alone costs a `j` command 3–4 ms to load.
 */
import { readFileSync } from "node:fs";
import * as net from "node:net";
import { UserError } from "../common/errors.ts";
import { netConnectTimed, tlsConnectTimed } from "../common/timed-connect.ts";
import { isTcpAddress, type SessionAddress } from "./session-address.ts";

/** The URL an HTTP/2 client is given for `addr`, and the socket it connects with. */
export function sessionSocket(addr: SessionAddress): { baseUrl: string; createConnection: () => net.Socket } {
  if (!isTcpAddress(addr.host)) {
    const path = addr.host;
    return { baseUrl: "http://localhost", createConnection: () => netConnectTimed({ path }) };
  }
  const i = addr.host.lastIndexOf(":");
  const hostname = addr.host.slice(0, i).replace(/^\[|\]$/g, "");
  const port = Number(addr.host.slice(i + 1));
  if (addr.insecure) return { baseUrl: `http://${addr.host}`, createConnection: () => netConnectTimed({ host: hostname, port }) };
  let ca: string | undefined;
  const caFile = addr.caFile ?? process.env.SSL_CERT_FILE;
  if (caFile) {
    try {
      ca = readFileSync(caFile, "utf8");
    } catch (e) {
      throw new UserError(`cannot read the CA file ${caFile}: ${(e as Error).message}`, 2);
    }
  }
  return {
    baseUrl: `https://${addr.host}`,
    createConnection: () => tlsConnectTimed({ host: hostname, port, ca, ALPNProtocols: ["h2"], servername: net.isIP(hostname) ? undefined : hostname }),
  };
}
