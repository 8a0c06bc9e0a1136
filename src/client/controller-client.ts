/**
 * A client's connection to the controller: ClientService and ControllerService
 * (Dial) with upstream's auth metadata, errors turned into messages a person can act on.
 */
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import * as tls from "node:tls";
import { UserError } from "../common/errors.ts";
import { ClientService } from "../gen/jumpstarter/client/v1/client_pb.ts";
import { ControllerService } from "../gen/jumpstarter/v1/jumpstarter_pb.ts";
import { tlsConnectOptions, type TlsSettings } from "../common/tls.ts";

export interface ControllerAddress {
  endpoint: string;
  token: string;
  namespace: string;
  name: string;
  tls: TlsSettings;
  kind?: "Client" | "Exporter" | "Admin";
}

/** Upstream's metadata on every call: the token, the kind, the namespace and the name. */
export function authMetadata(addr: ControllerAddress): Interceptor {
  return (next) => (req) => {
    req.header.set("authorization", `Bearer ${addr.token}`);
    req.header.set("jumpstarter-kind", addr.kind ?? "Client");
    req.header.set("jumpstarter-namespace", addr.namespace);
    req.header.set("jumpstarter-name", addr.name);
    return next(req);
  };
}

export function controllerTransport(addr: ControllerAddress) {
  const options = tlsConnectOptions(addr.endpoint, addr.tls);
  return createGrpcTransport({
    baseUrl: `https://${addr.endpoint}`,
    interceptors: [authMetadata(addr)],
    pingIntervalMs: 20_000,
    nodeOptions: { createConnection: () => tls.connect(options) },
  });
}

export interface ControllerClients {
  address: ControllerAddress;
  clients: Client<typeof ClientService>;
  controller: Client<typeof ControllerService>;
}

export function connectController(addr: ControllerAddress): ControllerClients {
  const transport = controllerTransport(addr);
  return { address: addr, clients: createClient(ClientService, transport), controller: createClient(ControllerService, transport) };
}

/** The controller's answer as one line for the terminal. */
export function explain(e: unknown, endpoint: string): Error {
  if (!(e instanceof ConnectError)) return e as Error;
  switch (e.code) {
    case Code.Unavailable:
      return new UserError(`cannot reach the controller at ${endpoint}: ${e.rawMessage}`, 1);
    case Code.Unauthenticated:
    case Code.PermissionDenied:
    case Code.NotFound:
    case Code.InvalidArgument:
    case Code.FailedPrecondition:
    case Code.AlreadyExists:
      return new UserError(e.rawMessage, 1);
    default:
      return new UserError(`the controller at ${endpoint} answered: ${e.rawMessage} (${Code[e.code]})`, 1);
  }
}
