/**
 * Whether the environment asks for plain h2c to a session. Apart from tls.ts, which
 * loads node:crypto and node:net: `j` reads this on every command.
 */

/** `JMP_GRPC_INSECURE=1` (or upstream's older `JUMPSTARTER_GRPC_INSECURE=1`). */
export function insecureFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return [env.JMP_GRPC_INSECURE, env.JUMPSTARTER_GRPC_INSECURE].some((v) => v !== undefined && /^(1|true|yes)$/i.test(v.trim()));
}
