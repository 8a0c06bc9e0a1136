/**
 * The address a server on the exporter should listen on when the config names
 * none: the one the exporter uses for its default route, as upstream does, since
 * that is the address a board on the lab network can reach.
 */
import dgram from "node:dgram";
import { networkInterfaces } from "node:os";

/** The local address of the default route; falls back to any external IPv4 address, then loopback. */
export async function defaultHostAddress(): Promise<string> {
  const routed = await new Promise<string | undefined>((resolve) => {
    // Connecting a UDP socket only picks a route; nothing is sent.
    const socket = dgram.createSocket("udp4");
    const done = (address?: string) => {
      socket.close();
      resolve(address);
    };
    socket.once("error", () => done());
    socket.connect(53, "192.0.2.1", () => {
      try {
        done(socket.address().address);
      } catch {
        done();
      }
    });
  });
  if (routed && routed !== "0.0.0.0") return routed;
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === "IPv4" && !a.internal) return a.address;
  }
  return "127.0.0.1";
}
