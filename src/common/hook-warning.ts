/**
 * Upstream's convention for a hook that failed with `onFailure: warn`: the exporter
 * reports LEASE_READY (or AVAILABLE) with a status message that starts with this,
 * and clients show the rest as a warning. Exporters write it, clients read it.
 */
export const HOOK_WARNING_PREFIX = "[HOOK_WARNING] ";
