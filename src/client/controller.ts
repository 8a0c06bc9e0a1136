/**
 * The client's one way into a controller. A client config (from `--client`,
 * `--client-config`, the environment or the current client) is checked once and
 * becomes a connection to ClientService and ControllerService with upstream's
 * auth metadata, a connect timeout, a deadline on every call, keepalive pings,
 * and every failure translated once (errors.ts). The CLI, the library and the
 * lease watchdog all come in here; the admin's connection shares the transport.
 */
import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { type ClientConfig, resolveClientConfig } from "../common/client-config.ts";
import { tlsConnectTimed } from "../common/timed-connect.ts";
import { tlsConnectOptions, type TlsSettings } from "../common/tls.ts";
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
/** Keepalive while calls are open, as upstream's clients do, so a vanished peer fails them. */
const PING_INTERVAL_MS = 10_000;
const PING_TIMEOUT_MS = 10_000;

export function controllerPeer(endpoint: string): Peer {
  return { what: "the controller", address: endpoint, caHint: "tls.ca in the client config (jmp config client create … --ca FILE)" };
}

/** Upstream's metadata on every call: the token, the kind, the namespace and the name. */
function authMetadata(addr: ControllerAddress): Interceptor {
  return (next) => (req) => {
    req.header.set("authorization", `Bearer ${addr.token}`);
    req.header.set("jumpstarter-kind", addr.kind ?? "Client");
    req.header.set("jumpstarter-namespace", addr.namespace);
    req.header.set("jumpstarter-name", addr.name);
    return next(req);
  };
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

/** gRPC over TLS to the controller, with the timeouts above; shared by clients and the admin. */
export function controllerTransport(addr: ControllerAddress): { transport: Transport; close(): void } {
  const options = tlsConnectOptions(addr.endpoint, addr.tls);
  const baseUrl = `https://${options.host.includes(":") ? `[${options.host}]` : options.host}:${options.port}`;
  const sessionManager = new Http2SessionManager(
    baseUrl,
    { pingIntervalMs: PING_INTERVAL_MS, pingTimeoutMs: PING_TIMEOUT_MS },
    { createConnection: () => tlsConnectTimed(options) },
  );
  const transport = createGrpcTransport({
    baseUrl,
    interceptors: [authMetadata(addr)],
    defaultTimeoutMs: CALL_TIMEOUT_MS,
    sessionManager,
  });
  return { transport, close: () => sessionManager.abort() };
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
