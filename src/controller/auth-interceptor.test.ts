import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { serveRoutes, type Served } from "../common/http2-server.ts";
import { ClientService, LeaseSchema } from "../gen/jumpstarter/client/v1/client_pb.ts";
import { ControllerService, StatusResponseSchema } from "../gen/jumpstarter/v1/jumpstarter_pb.ts";
import {
  authInterceptor, type CurrentCredential, identityOf, newSigningKeyPem, type Principal, type PrincipalKind, type RefusalDetails,
  type RefusalReason, TokenAuthority,
} from "./auth.ts";

const dir = mkdtempSync(join(tmpdir(), "jmp-auth-"));
const socket = join(dir, "controller.sock");
const principals = new Map<string, CurrentCredential>();
const alice: Principal = { kind: "Client", namespace: "lab", name: "alice", uid: "uid-a", tokenId: "tok-a1" };
const pi: Principal = { kind: "Exporter", namespace: "lab", name: "pi-1", uid: "uid-p", tokenId: "tok-p1" };
const ALLOW: Record<string, PrincipalKind[]> = { GetLease: ["Client", "Exporter"], CreateLease: ["Client"], Status: ["Exporter"] };

let pem: string;
let authority: TokenAuthority;
let served: Served;
let clients: Client<typeof ClientService>;
let controller: Client<typeof ControllerService>;
/** What the interceptor told of each refusal. */
const told: ({ reason: RefusalReason } & RefusalDetails)[] = [];

function register(p: Principal) {
  principals.set(`${p.kind}/${p.namespace}/${p.name}`, { uid: p.uid, tokenId: p.tokenId });
}

beforeAll(async () => {
  pem = await newSigningKeyPem();
  authority = await TokenAuthority.fromPem(pem);
  const interceptors = [authInterceptor({
    authority,
    lookup: async (kind, ns, name) => principals.get(`${kind}/${ns}/${name}`),
    allow: (method) => ALLOW[method.name] ?? [],
    onRefuse: (reason, about) => told.push({ reason, ...about }),
  })];
  served = await serveRoutes((router) => {
    router.service(ClientService, {
      // Answers with who the caller is, so tests see the identity the handler got.
      getLease: (req, ctx) => {
        if (req.name === "offline") throw new ConnectError("exporter pi-1 is offline", Code.FailedPrecondition);
        const who = identityOf(ctx);
        return create(LeaseSchema, { name: req.name, client: `${who.kind}/${who.namespace}/${who.name}` });
      },
      createLease: () => create(LeaseSchema, { name: "new" }),
    }, { interceptors });
    router.service(ControllerService, {
      async *status(_req, ctx) {
        yield create(StatusResponseSchema, { leased: false, clientName: identityOf(ctx).name });
      },
    }, { interceptors });
  }, { unix: socket });
  const transport = createGrpcTransport({ baseUrl: "http://localhost", nodeOptions: { createConnection: () => net.connect(socket) } });
  clients = createClient(ClientService, transport);
  controller = createClient(ControllerService, transport);
});

afterAll(async () => {
  await served.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Upstream's call metadata for a principal. */
function headers(p: Principal, token: string, overrides: Record<string, string> = {}): Record<string, string> {
  return {
    authorization: `Bearer ${token}`,
    "jumpstarter-kind": p.kind,
    "jumpstarter-namespace": p.namespace,
    "jumpstarter-name": p.name,
    ...overrides,
  };
}

/** The refusal of a call; also checks the token never comes back in the message. */
async function refusal(call: Promise<unknown>, token?: string): Promise<ConnectError> {
  const e = await call.then(() => undefined, (err: unknown) => err);
  expect(e).toBeInstanceOf(ConnectError);
  if (token) expect((e as ConnectError).rawMessage).not.toContain(token);
  return e as ConnectError;
}

test("a good token reaches the handler, which sees the caller's identity", async () => {
  register(alice);
  const { token } = await authority.issue(alice);
  const lease = await clients.getLease({ name: "l1" }, { headers: headers(alice, token) });
  expect(lease.client).toBe("Client/lab/alice");
  // The metadata is optional: the token alone says who is calling.
  expect((await clients.getLease({ name: "l1" }, { headers: { authorization: `Bearer ${token}` } })).client).toBe("Client/lab/alice");
});

test("streaming calls are authenticated the same way", async () => {
  register(pi);
  const { token } = await authority.issue(pi);
  const got: string[] = [];
  for await (const m of controller.status({}, { headers: headers(pi, token) })) got.push(m.clientName ?? "");
  expect(got).toEqual(["pi-1"]);
  const aliceToken = (await authority.issue(alice)).token;
  const e = await refusal((async () => {
    for await (const _ of controller.status({}, { headers: headers(alice, aliceToken) })) break;
  })());
  expect(e.code).toBe(Code.PermissionDenied);
  expect(e.rawMessage).toBe("a client token cannot call Status");
});

test("a call without a token, or with a header that is not Bearer, is unauthenticated", async () => {
  const none = await refusal(clients.getLease({ name: "l1" }));
  expect(none.code).toBe(Code.Unauthenticated);
  expect(none.rawMessage).toBe("no token was sent: set 'token' in your client or exporter config (or JMP_TOKEN)");
  const basic = await refusal(clients.getLease({ name: "l1" }, { headers: { authorization: "Basic YWxpY2U6cHc=" } }));
  expect(basic.code).toBe(Code.Unauthenticated);
  expect(basic.rawMessage).toBe("the authorization header is not 'Bearer <token>'");
});

test("an expired token says when it expired and what to do", async () => {
  register(alice);
  const past = await TokenAuthority.fromPem(pem, { clock: () => Date.parse("2025-01-01T00:00:00Z") });
  const { token } = await past.issue(alice, 3_600_000);
  const e = await refusal(clients.getLease({ name: "l1" }, { headers: headers(alice, token) }), token);
  expect(e.code).toBe(Code.Unauthenticated);
  expect(e.rawMessage).toBe("token expired at 2025-01-01T01:00:00Z; ask your admin for a new one");
});

test("a token from another controller is refused", async () => {
  register(alice);
  const other = await TokenAuthority.fromPem(await newSigningKeyPem());
  const { token } = await other.issue(alice);
  const e = await refusal(clients.getLease({ name: "l1" }, { headers: headers(alice, token) }), token);
  expect(e.code).toBe(Code.Unauthenticated);
  expect(e.rawMessage).toStartWith("token was not issued by this controller: it was signed by a different key");
});

test("an exporter token cannot create a lease", async () => {
  register(pi);
  const { token } = await authority.issue(pi);
  const e = await refusal(clients.createLease({ parent: "namespaces/lab" }, { headers: headers(pi, token) }), token);
  expect(e.code).toBe(Code.PermissionDenied);
  expect(e.rawMessage).toBe("an exporter token cannot call CreateLease");
  // The same token may call what exporters may.
  expect((await clients.getLease({ name: "l1" }, { headers: headers(pi, token) })).client).toBe("Exporter/lab/pi-1");
});

test("deleting the client revokes its token at once, even if it comes back under the same name", async () => {
  const bob: Principal = { ...alice, name: "bob", uid: "uid-b" };
  register(bob);
  const { token } = await authority.issue(bob);
  await clients.getLease({ name: "l1" }, { headers: headers(bob, token) });
  principals.delete("Client/lab/bob");
  const e = await refusal(clients.getLease({ name: "l1" }, { headers: headers(bob, token) }), token);
  expect(e.code).toBe(Code.Unauthenticated);
  expect(e.rawMessage).toBe("the client 'bob' was deleted or its token was rotated; this token is no longer valid");
  register({ ...bob, uid: "uid-b2" });
  expect((await refusal(clients.getLease({ name: "l1" }, { headers: headers(bob, token) }))).rawMessage).toContain("was deleted");
});

test("rotating the token revokes the old one; the new one works", async () => {
  const carol: Principal = { ...alice, name: "carol", uid: "uid-c", tokenId: "tok-c1" };
  register(carol);
  const old = (await authority.issue(carol)).token;
  register({ ...carol, tokenId: "tok-c2" });
  const fresh = (await authority.issue({ ...carol, tokenId: "tok-c2" })).token;
  const e = await refusal(clients.getLease({ name: "l1" }, { headers: headers(carol, old) }), old);
  expect(e.rawMessage).toBe("the client 'carol' was deleted or its token was rotated; this token is no longer valid");
  expect((await clients.getLease({ name: "l1" }, { headers: headers(carol, fresh) })).client).toBe("Client/lab/carol");
});

test("metadata that names someone else than the token is refused", async () => {
  register(alice);
  const { token } = await authority.issue(alice);
  const byName = await refusal(clients.getLease({ name: "l1" }, { headers: headers(alice, token, { "jumpstarter-name": "bob" }) }), token);
  expect(byName.code).toBe(Code.Unauthenticated);
  expect(byName.rawMessage).toBe("the call says jumpstarter-name is 'bob' but the token belongs to client 'alice' in namespace 'lab'");
  const byNs = await refusal(clients.getLease({ name: "l1" }, { headers: headers(alice, token, { "jumpstarter-namespace": "prod" }) }));
  expect(byNs.rawMessage).toBe("the call says jumpstarter-namespace is 'prod' but the token belongs to client 'alice' in namespace 'lab'");
  const byKind = await refusal(clients.getLease({ name: "l1" }, { headers: headers(alice, token, { "jumpstarter-kind": "Exporter" }) }));
  expect(byKind.rawMessage).toBe("the call says jumpstarter-kind is 'Exporter' but the token belongs to client 'alice' in namespace 'lab'");
});

test("only the token check's refusals are told (for metrics and the audit log), with why, the call and whose token; a handler's error is not", async () => {
  register(alice);
  const { token } = await authority.issue(alice);
  told.length = 0;
  const handler = await refusal(clients.getLease({ name: "offline" }, { headers: headers(alice, token) }));
  expect(handler.code).toBe(Code.FailedPrecondition);
  expect(told).toEqual([]);
  await refusal(clients.getLease({ name: "l1" }));
  await refusal(controller.status({}, { headers: headers(alice, token) })[Symbol.asyncIterator]().next());
  expect(told).toEqual([
    { reason: "no-token", procedure: "jumpstarter.client.v1.ClientService/GetLease", message: "no token was sent: set 'token' in your client or exporter config (or JMP_TOKEN)", who: undefined },
    { reason: "not-allowed", procedure: "jumpstarter.v1.ControllerService/Status", message: "a client token cannot call Status", who: { kind: "Client", namespace: "lab", name: "alice" } },
  ]);
});
