/**
 * Scenario 4: tokens the controller must refuse (src/controller/auth.ts). Each is
 * made with `jose`, most signed with the controller's own key from its data dir so
 * that only the claim under test is wrong: expired, not yet valid, another issuer,
 * another audience, `alg: none`, HMAC keyed with the public key (and with the
 * router key), another key with the same key id, missing claims, a deleted client's,
 * a rotated one, another namespace's, a client's token for exporter and admin calls
 * and the reverse, metadata that contradicts the token, garbage; and at the
 * embedded router, a principal token and bad router tokens.
 *
 * Every one must be refused (Unauthenticated or PermissionDenied) with a message,
 * and the valid tokens beside them must work: a refusal proves nothing if
 * everything is refused.
 */
import { createPrivateKey, createPublicKey, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { decodeJwt, generateKeyPair, importPKCS8, SignJWT, UnsecuredJWT, type JWTPayload } from "jose";
import { parse } from "yaml";
import { loadClientConfig } from "../src/common/client-config.ts";
import { connectRemote } from "../src/common/remote-connection.ts";
import { caPem } from "../src/common/tls.ts";
import { AdminService } from "../src/gen/jumpstarter/admin/v1/admin_pb.ts";
import { ClientService } from "../src/gen/jumpstarter/client/v1/client_pb.ts";
import { ExporterStatus } from "../src/gen/jumpstarter/v1/common_pb.ts";
import { ControllerService } from "../src/gen/jumpstarter/v1/jumpstarter_pb.ts";
import { RouterService } from "../src/gen/jumpstarter/v1/router_pb.ts";
import { closeLab, type Options, type Row, row, say, stackLines, startLab } from "./lib.ts";
import { call, connect, describe, frame } from "./wire.ts";

const ISSUER = "https://localhost:8085";
const AUDIENCE = "jumpstarter";
const ROUTER_ISSUER = "https://jumpstarter.dev/stream";
const ROUTER_AUDIENCE = "https://jumpstarter.dev/router";

type Target = "client" | "exporter" | "admin";

interface Case {
  what: string;
  /** The `authorization` value (undefined: none sent) and any other metadata. */
  headers: Record<string, string>;
  /** Which kind of call it is tried on. */
  on: Target;
}

const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

export async function tokenNegatives(opts: Options, rows: Row[]): Promise<void> {
  const out = row("token negatives (controller and its router)", rows);
  const lab = await startLab(opts);
  const env = { ...process.env, ...lab.env };
  try {
    await lab.addClient("alice");
    await lab.addClient("doomed");
    await lab.addClient("rotated");
    const exporterFile = await lab.addExporter("pi-1", { board: "x" });
    const tokens = {
      client: loadClientConfig("alice", env).token!,
      doomed: loadClientConfig("doomed", env).token!,
      rotated: loadClientConfig("rotated", env).token!,
      exporter: (parse(readFileSync(exporterFile, "utf8")) as { token: string }).token,
      admin: (parse(readFileSync(join(lab.dataDir, "admin.yaml"), "utf8")) as { token: string }).token,
    };
    const ca = caPem((parse(readFileSync(join(lab.dataDir, "admin.yaml"), "utf8")) as { tls: { ca: string } }).tls.ca);
    const keyPem = readFileSync(join(lab.dataDir, "signing-key.pem"), "utf8");
    const key = await importPKCS8(keyPem, "ES256");
    const publicPem = createPublicKey(createPrivateKey(keyPem)).export({ type: "spki", format: "pem" }).toString();
    const routerKey = readFileSync(join(lab.dataDir, "router-key"), "utf8").trim();
    const alice = decodeJwt(tokens.client);
    const kid = (JSON.parse(Buffer.from(tokens.client.split(".")[0]!, "base64url").toString()) as { kid: string }).kid;
    const now = Math.floor(Date.now() / 1000);

    /** alice's token with `change` applied to its claims, signed with the controller's key unless `by` says otherwise. */
    const forged = (change: JWTPayload, by: { alg: string; key: CryptoKey | Uint8Array } = { alg: "ES256", key }) => {
      const claims: JWTPayload = { ...alice, ...change };
      for (const [k, v] of Object.entries(claims)) if (v === undefined) delete claims[k];
      return new SignJWT(claims).setProtectedHeader({ alg: by.alg, kid, typ: "JWT" }).sign(by.key);
    };
    const other = (await generateKeyPair("ES256")).privateKey;

    const remote = connectRemote(lab.endpoint, { ca }, { peer: "the controller", defaultTimeoutMs: 10_000 });
    const clients = createClient(ClientService, remote.transport);
    const controller = createClient(ControllerService, remote.transport);
    const admin = createClient(AdminService, remote.transport);
    const attempt = async (on: Target, headers: Record<string, string>): Promise<ConnectError | undefined> => {
      try {
        if (on === "client") await clients.listLeases({ parent: "namespaces/default" }, { headers });
        else if (on === "exporter") await controller.reportStatus({ status: ExporterStatus.AVAILABLE, message: "chaos" }, { headers });
        else await admin.listClients({ namespace: "default" }, { headers });
        return undefined;
      } catch (e) {
        return ConnectError.from(e);
      }
    };
    const control = async (what: string, on: Target, headers: Record<string, string>) => {
      const e = await attempt(on, headers);
      if (e) out.problems.push(`control: ${what} was refused (${Code[e.code]}: ${e.rawMessage}), so refusals below prove nothing`);
    };
    await control("alice's token", "client", bearer(tokens.client));
    await control("the exporter's token", "exporter", bearer(tokens.exporter));
    await control("the admin's token", "admin", bearer(tokens.admin));

    // Revocations: doomed is deleted (and made again: a new uid), rotated gets a new token.
    await lab.admin("delete", "client", "doomed");
    await lab.addClient("doomed");
    const fresh = await clients.rotateToken({ parent: "namespaces/default" }, { headers: bearer(tokens.rotated) });
    await control("a rotated client's new token", "client", bearer(fresh.token));

    const cases: Case[] = [
      { what: "expired an hour ago", on: "client", headers: bearer(await forged({ iat: now - 7200, exp: now - 3600 })) },
      { what: "not valid for another hour (nbf)", on: "client", headers: bearer(await forged({ nbf: now + 3600 })) },
      { what: "from another issuer", on: "client", headers: bearer(await forged({ iss: "https://evil.example" })) },
      { what: "for another audience", on: "client", headers: bearer(await forged({ aud: "someone-else" })) },
      { what: "alg none", on: "client", headers: bearer(new UnsecuredJWT({ ...alice }).encode()) },
      { what: "HS256 keyed with the controller's public key (PEM)", on: "client", headers: bearer(await forged({}, { alg: "HS256", key: new TextEncoder().encode(publicPem) })) },
      { what: "HS256 keyed with the router key", on: "client", headers: bearer(await forged({}, { alg: "HS256", key: new TextEncoder().encode(routerKey) })) },
      { what: "signed by another key under the controller's key id", on: "client", headers: bearer(await forged({}, { alg: "ES256", key: other })) },
      { what: "without a token id (jti)", on: "client", headers: bearer(await forged({ jti: undefined })) },
      { what: "without a subject", on: "client", headers: bearer(await forged({ sub: undefined })) },
      { what: "with a subject that names nobody", on: "client", headers: bearer(await forged({ sub: "client:default" })) },
      { what: "with a stale token id", on: "client", headers: bearer(await forged({ jti: "not-the-current-one" })) },
      { what: "of a deleted client (made again since)", on: "client", headers: bearer(tokens.doomed) },
      { what: "rotated away", on: "client", headers: bearer(tokens.rotated) },
      { what: "for the same name in another namespace", on: "client", headers: bearer(await forged({ sub: String(alice.sub).replace(/^client:default:/, "client:other:") })) },
      { what: "whose metadata names another namespace", on: "client", headers: { ...bearer(tokens.client), "jumpstarter-namespace": "other" } },
      { what: "whose metadata says it is an exporter", on: "client", headers: { ...bearer(tokens.client), "jumpstarter-kind": "Exporter" } },
      { what: "an exporter's, on a client call", on: "client", headers: bearer(tokens.exporter) },
      { what: "the admin's, on a client call", on: "client", headers: bearer(tokens.admin) },
      { what: "a client's, on an exporter call", on: "exporter", headers: bearer(tokens.client) },
      { what: "the admin's, on an exporter call", on: "exporter", headers: bearer(tokens.admin) },
      { what: "a client's, on an admin call", on: "admin", headers: bearer(tokens.client) },
      { what: "an exporter's, on an admin call", on: "admin", headers: bearer(tokens.exporter) },
      { what: "none at all", on: "client", headers: {} },
      { what: "an empty bearer", on: "client", headers: { authorization: "Bearer " } },
      { what: "Basic auth", on: "client", headers: { authorization: "Basic YWxpY2U6c2VjcmV0" } },
      { what: "garbage", on: "client", headers: bearer("garbage") },
      { what: "three dots of garbage", on: "client", headers: bearer("a.b.c") },
      // Below the 64 KiB header list the server announces (beyond it, HTTP/2 ends the connection, as the RFC allows).
      { what: "53 KiB of random base64url", on: "client", headers: bearer(randomBytes(40 * 1024).toString("base64url")) },
      { what: "alice's, on an admin call", on: "admin", headers: bearer(await forged({ sub: String(alice.sub).replace(/^client:/, "admin:") })) },
    ];
    for (const c of cases) {
      const e = await attempt(c.on, c.headers);
      out.faults++;
      if (!e) out.problems.push(`accepted a token ${c.what}`);
      else if (e.code !== Code.Unauthenticated && e.code !== Code.PermissionDenied) out.problems.push(`a token ${c.what}: ${Code[e.code]} (${e.rawMessage}), not Unauthenticated or PermissionDenied`);
      else if (!e.rawMessage.trim()) out.problems.push(`a token ${c.what}: refused (${Code[e.code]}) without a message`);
      say(opts, `token ${c.what}: ${e ? `${Code[e.code]}: ${e.rawMessage}` : "ACCEPTED"}`);
    }

    // The embedded router: its streams take router tokens (HS256, router key) and nothing else.
    const routerToken = (change: JWTPayload) => {
      const claims: JWTPayload = {
        iss: ROUTER_ISSUER, aud: ROUTER_AUDIENCE, sub: crypto.randomUUID(), iat: now - 10, exp: now + 60, lease: "some-lease", namespace: "default", ...change,
      };
      for (const [k, v] of Object.entries(claims)) if (v === undefined) delete claims[k];
      return new SignJWT(claims).setProtectedHeader({ alg: "HS256", typ: "JWT" }).sign(new TextEncoder().encode(routerKey));
    };
    const routerCases: [string, Record<string, string>][] = [
      ["a client's principal token", bearer(tokens.client)],
      ["the admin's token", bearer(tokens.admin)],
      ["an expired router token", bearer(await routerToken({ exp: now - 60 }))],
      ["a router token for another audience", bearer(await routerToken({ aud: AUDIENCE }))],
      ["a router token from the principal issuer", bearer(await routerToken({ iss: ISSUER }))],
      ["a router token naming no lease", bearer(await routerToken({ lease: undefined }))],
      ["none at all", {}],
    ];
    // The control: a valid router token is let in, to wait for its other side (there is none: it is cancelled).
    const valid = bearer(await routerToken({}));
    const session = await connect({ url: `https://${lab.endpoint}`, ca });
    try {
      const { answer: waiting, stream: open } = call(session, `/${RouterService.typeName}/Stream`, [frame(new Uint8Array())], { headers: valid, timeoutMs: 2_000, keepOpen: true });
      const w = await waiting;
      open.close();
      if (w.outcome.kind !== "hang") out.problems.push(`control: the router did not let a valid router token wait for its peer (${describe(w.outcome)}), so refusals below prove nothing`);
      for (const [what, headers] of routerCases) {
        const { answer, stream } = call(session, `/${RouterService.typeName}/Stream`, [frame(new Uint8Array())], { headers, timeoutMs: 10_000, keepOpen: true });
        const a = await answer;
        stream.close();
        out.faults++;
        const o = a.outcome;
        if (o.kind !== "status" || (o.code !== Code.Unauthenticated && o.code !== Code.PermissionDenied) || !o.message) out.problems.push(`router given ${what}: ${describe(o)}`);
        say(opts, `router, ${what}: ${describe(o)}`);
      }
    } finally {
      session.destroy();
    }
    await control("alice's token, after all that", "client", bearer(tokens.client));
    remote.close();
    const stack = stackLines(lab.controller.output);
    if (stack.length) out.problems.push(`the controller's log has a stack trace: ${stack[0]!.trim()}`);
  } finally {
    await closeLab(opts, lab).catch((e: Error) => out.problems.push(`cleanup: ${e.message.split("\n")[0]}`));
  }
}
