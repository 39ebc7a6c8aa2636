import { isIPv4 } from "node:net";

/**
 * Splits `host:port`, with an IPv6 host in brackets (`[::1]:33076`). Undefined when the text
 * is not of that form; the port is not range-checked, so that callers can say so precisely.
 */
export function splitHostPort(text: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:[\]/]+)):(\d+)$/.exec(text);
  return m === null ? undefined : { host: m[1] ?? m[2]!, port: Number(m[3]) };
}

/** `host:port`, with IPv6 hosts in brackets (`[::1]:33076`). */
export function formatHostPort(host: string, port: number | string): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** True for 127.0.0.0/8, ::1 and IPv4-mapped ::ffff:127.x.x.x. */
export function isLoopbackAddress(address: string): boolean {
  if (address === "::1") return true;
  const v4 = address.toLowerCase().startsWith("::ffff:") ? address.slice(7) : address;
  return isIPv4(v4) && v4.startsWith("127.");
}
