/**
 * Upstream's metadata on every controller call: the bearer token and who claims
 * to hold it (`jumpstarter-kind`, `-namespace`, `-name`). Clients, exporters and
 * the admin send the same four keys; the controller checks them against the token.
 */
import type { Interceptor } from "@connectrpc/connect";

export interface Principal {
  token: string;
  kind: "Client" | "Exporter" | "Admin";
  namespace: string;
  name: string;
}

export function principalMetadata(p: Principal): Interceptor {
  return (next) => (req) => {
    req.header.set("authorization", `Bearer ${p.token}`);
    req.header.set("jumpstarter-kind", p.kind);
    req.header.set("jumpstarter-namespace", p.namespace);
    req.header.set("jumpstarter-name", p.name);
    return next(req);
  };
}
