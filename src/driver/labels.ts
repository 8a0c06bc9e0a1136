/**
 * The labels of a GetReport's driver reports, as upstream names them. Apart from
 * report.ts (which builds reports on the exporter, with protobuf-es) so that a
 * client reading them loads no protobuf runtime.
 */
export const CLIENT_LABEL = "jumpstarter.dev/client";
export const NAME_LABEL = "jumpstarter.dev/name";
/**
 * Ours, beyond upstream: the exported methods and their kinds (`on,read:streaming,
 * connect:bytes`), so a client that lacks the driver's client class can still offer
 * every method. Upstream clients ignore labels they do not know.
 */
export const METHODS_LABEL = "jmp.dev/methods";
