/**
 * The `Status` bodies the double answers with, worded as kube-apiserver words them, so the
 * controller's error handling is exercised against what a real cluster sends.
 * API conventions, "Response Status Kind" and "HTTP Status codes".
 */

export interface StatusDetails {
  name?: string;
  group?: string;
  /** The resource (plural), as the real server puts it. */
  kind?: string;
  uid?: string;
  causes?: { reason?: string; message: string; field?: string }[];
}

export interface StatusBody {
  kind: "Status";
  apiVersion: "v1";
  metadata: Record<string, never>;
  status: "Success" | "Failure";
  message?: string;
  reason?: string;
  details?: StatusDetails;
  code: number;
}

/** A request that fails with a Kubernetes `Status`; the router turns it into the response. */
export class ApiError extends Error {
  constructor(readonly code: number, readonly reason: string, message: string, readonly details?: StatusDetails) {
    super(message);
  }

  body(): StatusBody {
    return {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: this.message,
      reason: this.reason,
      ...(this.details ? { details: this.details } : {}),
      code: this.code,
    };
  }
}

/** What names a resource in messages: `leases.jumpstarter.dev`, or `secrets` for the core group. */
export interface ResourceName {
  group: string;
  plural: string;
}

export function qualified(r: ResourceName): string {
  return r.group ? `${r.plural}.${r.group}` : r.plural;
}

function details(r: ResourceName, name: string): StatusDetails {
  return { name, group: r.group, kind: r.plural };
}

export const notFound = (r: ResourceName, name: string) =>
  new ApiError(404, "NotFound", `${qualified(r)} "${name}" not found`, details(r, name));

export const alreadyExists = (r: ResourceName, name: string) =>
  new ApiError(409, "AlreadyExists", `${qualified(r)} "${name}" already exists`, details(r, name));

/** A write whose resourceVersion precondition no longer holds. API conventions, "Concurrency Control and Consistency". */
export const conflict = (r: ResourceName, name: string, why = "the object has been modified; please apply your changes to the latest version and try again") =>
  new ApiError(409, "Conflict", `Operation cannot be fulfilled on ${qualified(r)} "${name}": ${why}`, details(r, name));

export const invalid = (kind: string, r: ResourceName, name: string, field: string, message: string) =>
  new ApiError(422, "Invalid", `${kind}${r.group ? `.${r.group}` : ""} "${name}" is invalid: ${field}: ${message}`, {
    ...details(r, name),
    kind,
    causes: [{ reason: "FieldValueInvalid", message, field }],
  });

export const badRequest = (message: string) => new ApiError(400, "BadRequest", message);

/** The catch-all for an unknown group, version or resource, as the real server's NotFound handler answers. */
export const noResource = () => new ApiError(404, "NotFound", "the server could not find the requested resource", {});

export const methodNotAllowed = (method: string) =>
  new ApiError(405, "MethodNotAllowed", `the server does not allow this method on the requested resource (${method})`, {});

export const unauthorized = () => new ApiError(401, "Unauthorized", "Unauthorized");

/** RBAC's denial, word for word as the real authorizer phrases it (resource may carry `/status`). */
export function forbidden(user: string, verb: string, r: ResourceName & { subresource?: string }, namespace: string | undefined, name?: string): ApiError {
  const resource = r.subresource ? `${r.plural}/${r.subresource}` : r.plural;
  const subject = name ? `${qualified(r)} "${name}"` : qualified(r);
  const scope = namespace ? ` in the namespace "${namespace}"` : " at the cluster scope";
  return new ApiError(403, "Forbidden", `${subject} is forbidden: User "${user}" cannot ${verb} resource "${resource}" in API group "${r.group}"${scope}`, {
    ...(name ? { name } : {}),
    group: r.group,
    kind: r.plural,
  });
}

/** A watch that asks for history the server no longer keeps. API Concepts, "Efficient detection of changes". */
export const expired = (asked: number, oldest: number) =>
  new ApiError(410, "Expired", `too old resource version: ${asked} (${oldest})`);

export function success(r: ResourceName, name: string, uid: string): Omit<StatusBody, "message" | "reason"> {
  return { kind: "Status", apiVersion: "v1", metadata: {}, status: "Success", details: { ...details(r, name), uid }, code: 200 };
}
