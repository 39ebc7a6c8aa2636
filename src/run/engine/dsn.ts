/**
 * Go MySQL DSNs, the form Finch takes: `[user[:password]@][tcp[(host:port)]|unix(path)]/[db][?params]`
 * (e.g. `root@tcp(127.0.0.1:3306)/bench`). Parameters are accepted and ignored but for none;
 * the error never repeats the DSN (it may hold a password).
 */
export function parseDsn(
  dsn: string,
):
  | { host: string; port: number; socket?: string; user: string; password: string; database: string }
  | { error: string } {
  const slash = dsn.lastIndexOf("/");
  if (slash < 0) return { error: "a DSN has a / before the database name: user:pass@tcp(host:port)/db" };
  const head = dsn.slice(0, slash);
  const db = dsn.slice(slash + 1).split("?")[0] ?? "";
  const at = head.lastIndexOf("@");
  const cred = at >= 0 ? head.slice(0, at) : "";
  const addr = at >= 0 ? head.slice(at + 1) : head;
  const colon = cred.indexOf(":");
  const user = colon >= 0 ? cred.slice(0, colon) : cred;
  const password = colon >= 0 ? cred.slice(colon + 1) : "";
  let host = "127.0.0.1";
  let port = 3306;
  let socket: string | undefined;
  if (addr !== "") {
    const m = /^(tcp|unix)(?:\((.*)\))?$/.exec(addr);
    if (!m) return { error: "the address must be tcp(host:port) or unix(/path/to/socket)" };
    if (m[1] === "unix") {
      if (!m[2]) return { error: "unix(…) needs the socket's path" };
      socket = m[2];
    } else if (m[2]) {
      const hp = /^(\[[^\]]+\]|[^:]+)(?::(\d{1,5}))?$/.exec(m[2]);
      if (!hp) return { error: "tcp(…) must hold host:port" };
      host = hp[1]!.replace(/^\[|\]$/g, "");
      if (hp[2] !== undefined) port = Number(hp[2]);
      if (!(port >= 1 && port <= 65535)) return { error: "the port must be 1 to 65535" };
    }
  }
  return { host, port, ...(socket !== undefined && { socket }), user, password, database: db };
}
