/**
 * The client's one way into a controller. A client config (from `--client`,
 * `--client-config`, the environment or the current client) is checked once and
 * becomes a connection to ClientService and ControllerService with upstream's
 * auth metadata, a connect timeout, a deadline on every call, keepalive pings,
 * and every failure translated once (errors.ts). The CLI, the library and the
 * lease watchdog all come in here; the admin's connection shares the transport.
 */
import { createClient, type Client } from "@connectrpc/connect";
import { type ClientConfig, resolveClientConfig } from "../common/client-config.ts";
import { principalMetadata } from "../common/principal-metadata.ts";
import { connectRemote, type RemoteConnection } from "../common/remote-connection.ts";
import type { TlsSettings } from "../common/tls.ts";
import { ClientService } from "../gen/jumpstarter/client/v1/client_pb.ts";
import { ControllerService } from "../gen/jumpstarter/v1/jumpstarter_pb.ts";
import { type Peer, peerError } from "./errors.ts";

export interface ControllerAddress {
  endpoint: string;
  token: string;
  namespace: string;
  name: string;
  tls: TlsSettings;
  kind?: "Client" | "Exporter" | "Admin";
}

export interface ControllerConnection {
  address: ControllerAddress;
  clients: Client<typeof ClientService>;
  controller: Client<typeof ControllerService>;
  /** Drops the HTTP/2 connection (calls in flight fail). */
  close(): void;
}

/** Which client config to use; see resolveClientConfig for the order. */
export interface ControllerChoice {
  client?: string;
  clientConfig?: string;
  env?: NodeJS.ProcessEnv;
}

/**
 * Every controller call has an answer within this, or fails: the controller's
 * unary calls are quick, and a call that hangs means a peer that went silent.
 */
const CALL_TIMEOUT_MS = 30_000;

export function controllerPeer(endpoint: string): Peer {
  return { what: "the controller", address: endpoint, caHint: "tls.ca in the client config (jmp config client create … --ca FILE)" };
}

/**
 * Every failure of every call, translated once for whoever called. (Not an
 * interceptor: Connect wraps whatever an interceptor throws in a ConnectError.)
 * The controller's client methods are all unary.
 */
export function translated<T extends object>(client: T, peer: Peer): T {
  return new Proxy(client, {
    get(target, key, receiver) {
      const value = Reflect.get(target, key, receiver);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        const result = value.apply(target, args);
        return result instanceof Promise ? result.catch((e: unknown) => { throw peerError(e, peer); }) : result;
      };
    },
  });
}

/**
 * gRPC over TLS to the controller, shared by clients and the admin: the same
 * connection as the exporter's (connect timeout, keepalive, a lost connection
 * failing its calls), with upstream's metadata and a deadline on every call.
 */
export function controllerTransport(addr: ControllerAddress): RemoteConnection {
  return connectRemote(addr.endpoint, addr.tls, {
    interceptors: [principalMetadata({ token: addr.token, kind: addr.kind ?? "Client", namespace: addr.namespace, name: addr.name })],
    peer: "the controller",
    defaultTimeoutMs: CALL_TIMEOUT_MS,
  });
}

export function connectController(addr: ControllerAddress): ControllerConnection {
  const { transport, close } = controllerTransport(addr);
  const peer = controllerPeer(addr.endpoint);
  return {
    address: addr,
    clients: translated(createClient(ClientService, transport), peer),
    controller: translated(createClient(ControllerService, transport), peer),
    close,
  };
}

/** The client config a command or a script chose, checked, and a connection to its controller. */
export function openController(choice: ControllerChoice = {}): ControllerConnection & { config: ClientConfig } {
  const config = resolveClientConfig({ client: choice.client, clientConfig: choice.clientConfig }, choice.env ?? process.env);
  const connection = connectController({
    endpoint: config.endpoint!,
    token: config.token!,
    namespace: config.metadata.namespace ?? "default",
    name: config.metadata.name ?? "",
    tls: config.tls,
  });
  return { ...connection, config };
}
