/**
 * For tests: a client's way into a lease through a router (src/router/test-router.ts),
 * with the controller's part played by the test.
 */
import { openTunnel, type Tunnel, type TunnelOptions } from "../client/tunnel.ts";
import type { TlsSettings } from "../common/tls.ts";
import type { LeaseSession } from "../exporter/agent.ts";

/**
 * A tunnel to `lease` through the router at `routerAddress`, dialled as the controller
 * does on Dial: one fresh token a connection, handed to the exporter (what its Listen
 * stream would bring) and to the client. `onDial` is told of each dial.
 */
export function tunnelToLease(
  lease: LeaseSession,
  routerAddress: string,
  trust: TlsSettings,
  opts: { onDial?: () => void; onError?: TunnelOptions["onError"] } = {},
): Promise<Tunnel> {
  return openTunnel({
    dial: async () => {
      const token = crypto.randomUUID();
      opts.onDial?.();
      lease.carry(routerAddress, token);
      return { endpoint: routerAddress, token };
    },
    tls: trust,
    onError: opts.onError,
  });
}
