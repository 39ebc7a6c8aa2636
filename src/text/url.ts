import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import { formatHostPort, isLoopbackAddress, splitHostPort } from "../internal/host-port.js";

/** Where a text endpoint listens or a text client connects. */
export type TextAddress =
  | { readonly kind: "tcp" | "tls" | "udp"; readonly host: string; readonly port: number }
  | { readonly kind: "unix"; readonly path: string };

function bad(url: string, why: string): MusterError {
  return new MusterError(ErrorCode.INVALID_ARGUMENT, `text address ${JSON.stringify(url)}: ${why}`);
}

/**
 * Parses `tcp://host:port`, `tls://host:port`, `udp://host:port` (IPv6 as `[::1]:port`) or
 * `unix:/path` (also `unix:///path` and `unix:relative/path`). Port 0 means any free port
 * when listening. Throws INVALID_ARGUMENT naming what is wrong.
 */
export function parseTextAddress(url: string): TextAddress {
  if (typeof url !== "string" || url === "") throw bad(String(url), "empty");
  if (url.startsWith("unix:")) {
    let path = url.slice("unix:".length);
    if (path.startsWith("//")) path = path.slice(2);
    if (path === "") throw bad(url, "no socket path after unix:");
    if (path.includes("\0")) throw bad(url, "the socket path has a NUL character");
    return { kind: "unix", path };
  }
  const m = /^(tcp|tls|udp):\/\/(.*)$/.exec(url);
  if (m === null) throw bad(url, "use tcp://host:port, tls://host:port, udp://host:port or unix:/path");
  const kind = m[1] as "tcp" | "tls" | "udp";
  const rest = m[2]!.replace(/\/$/, "");
  const hp = splitHostPort(rest);
  if (hp === undefined) throw bad(url, `expected host:port after ${kind}:// (IPv6 as [::1]:port)`);
  if (hp.port > 65535) throw bad(url, `port ${hp.port} is beyond 65535`);
  return { kind, ...hp };
}

/** Writes an address back as a URL. */
export function formatTextAddress(a: TextAddress): string {
  if (a.kind === "unix") return `unix:${a.path}`;
  return `${a.kind}://${formatHostPort(a.host, a.port)}`;
}

/** Whether a host is a loopback address (or `localhost`). */
export function isLoopbackHost(host: string): boolean {
  return host === "localhost" || isLoopbackAddress(host);
}
