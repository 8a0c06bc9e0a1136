/** Apart from connect.ts, which loads node:net: the tftp client formats addresses in every `j` command. */

/** `host:port`, with IPv6 literals in brackets (a host with a colon in it can only be one). */
export function hostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}
