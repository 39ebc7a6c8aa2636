// Certificates for tests, made with the openssl command: a CA, a server certificate for
// 127.0.0.1 and localhost, a client certificate from the CA (CN=web-1, OU=agent), a self-signed
// one that is not from it, and any extra client certificates from the CA by subject.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export const hasOpenssl = spawnSync("sh", ["-c", "command -v openssl"]).status === 0;

export interface Pem {
  cert: string;
  key: string;
}

/** Makes the certificates of this test in `dir` with the openssl command. */
export function makeCertificates(
  dir: string,
  extra: Record<string, string> = {},
): { ca: Pem; server: Pem; client: Pem; foreign: Pem; extra: Record<string, Pem> } {
  const run = (...args: string[]): void => {
    const r = spawnSync("openssl", args, { cwd: dir, encoding: "utf8" });
    assert.equal(r.status, 0, `openssl ${args.join(" ")}: ${r.stderr}`);
  };
  writeFileSync(
    join(dir, "ext.cnf"),
    [
      "[ca]",
      "basicConstraints = critical, CA:TRUE",
      "keyUsage = critical, keyCertSign, cRLSign",
      "subjectKeyIdentifier = hash",
      "[server]",
      "basicConstraints = CA:FALSE",
      "keyUsage = critical, digitalSignature",
      "extendedKeyUsage = serverAuth",
      "subjectAltName = IP:127.0.0.1, DNS:localhost",
      "[client]",
      "basicConstraints = CA:FALSE",
      "keyUsage = critical, digitalSignature",
      "extendedKeyUsage = clientAuth",
      "",
    ].join("\n"),
  );
  const key = (name: string): void =>
    run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", `${name}.key`);
  let serial = 0;
  /** A certificate for `subject`: signed by the CA made first, or by its own key. */
  const certificate = (name: string, subject: string, section: string, by: "ca" | "self"): void => {
    key(name);
    run("req", "-new", "-key", `${name}.key`, "-subj", subject, "-out", `${name}.csr`);
    const issuer =
      by === "ca"
        ? ["-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", String(Date.now() * 1000 + serial++)]
        : ["-key", `${name}.key`];
    run(
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      ...issuer,
      "-days",
      "2",
      "-extfile",
      "ext.cnf",
      "-extensions",
      section,
      "-out",
      `${name}.pem`,
    );
  };
  const selfSigned = (name: string, subject: string, section: string): void =>
    certificate(name, subject, section, "self");
  const signed = (name: string, subject: string, section: string): void =>
    certificate(name, subject, section, "ca");
  selfSigned("ca", "/CN=muster test CA", "ca");
  signed("server", "/CN=localhost", "server");
  signed("client", "/CN=web-1/OU=agent", "client");
  selfSigned("foreign", "/CN=intruder/OU=agent/OU=ops", "client");
  for (const [name, subject] of Object.entries(extra)) signed(name, subject, "client");
  const read = (name: string): Pem => ({
    cert: readFileSync(join(dir, `${name}.pem`), "utf8"),
    key: readFileSync(join(dir, `${name}.key`), "utf8"),
  });
  return {
    ca: read("ca"),
    server: read("server"),
    client: read("client"),
    foreign: read("foreign"),
    extra: Object.fromEntries(Object.keys(extra).map((n) => [n, read(n)])),
  };
}
