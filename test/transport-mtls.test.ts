// Client certificates over tls:// and wss://, with certificates made by `openssl` for the run:
// a CA, a server certificate for 127.0.0.1 and localhost, a client certificate from the CA
// (CN=web-1, OU=agent) and a self-signed one that is not from it.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { dialTcp, listenTcp } from "../src/transport/tcp.js";
import type { Listener, TlsClientOptions, TlsServerOptions, Transport } from "../src/transport/types.js";
import { dialWebSocket, listenWebSocket } from "../src/transport/websocket.js";
import { Probe, testFrame, until } from "./conformance/transport-conformance.js";

const hasOpenssl = spawnSync("sh", ["-c", "command -v openssl"]).status === 0;
const skip = hasOpenssl
  ? false
  : "openssl is not installed: no certificates to test client authentication with";

interface Pem {
  cert: string;
  key: string;
}

/** Makes the certificates of this test in `dir` with the openssl command. */
function makeCertificates(dir: string): { ca: Pem; server: Pem; client: Pem; foreign: Pem } {
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
  const selfSigned = (name: string, subject: string, section: string): void => {
    key(name);
    run("req", "-new", "-key", `${name}.key`, "-subj", subject, "-out", `${name}.csr`);
    run(
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-key",
      `${name}.key`,
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
  const signed = (name: string, subject: string, section: string): void => {
    key(name);
    run("req", "-new", "-key", `${name}.key`, "-subj", subject, "-out", `${name}.csr`);
    run(
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca.key",
      "-set_serial",
      String(Date.now()),
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
  selfSigned("ca", "/CN=muster test CA", "ca");
  signed("server", "/CN=localhost", "server");
  signed("client", "/CN=web-1/OU=agent", "client");
  selfSigned("foreign", "/CN=intruder/OU=agent/OU=ops", "client");
  const read = (name: string): Pem => ({
    cert: readFileSync(join(dir, `${name}.pem`), "utf8"),
    key: readFileSync(join(dir, `${name}.key`), "utf8"),
  });
  return { ca: read("ca"), server: read("server"), client: read("client"), foreign: read("foreign") };
}

type Kind = "tls" | "wss";

interface Served {
  listener: Listener;
  next(): Promise<Transport>;
  accepted: Transport[];
}

async function serve(kind: Kind, tls: TlsServerOptions): Promise<Served> {
  const accepted: Transport[] = [];
  const options = { host: "127.0.0.1", port: 0, tls };
  const onAccept = (t: Transport): void => {
    accepted.push(t);
  };
  const listener =
    kind === "tls" ? await listenTcp(options, onAccept) : await listenWebSocket(options, onAccept);
  let taken = 0;
  const next = async (): Promise<Transport> => {
    const i = taken++;
    await until(`accepted connection #${i}`, () => accepted.length > i);
    return accepted[i]!;
  };
  return { listener, next, accepted };
}

function dial(kind: Kind, url: string, tls: TlsClientOptions): Promise<Transport> {
  return kind === "tls" ? dialTcp(new URL(url), { tls }) : dialWebSocket(new URL(url), { tls });
}

/** Every transport dialed, closed at the end even when a test failed half-way. */
const dialed: Transport[] = [];

/** Dials, checks that a frame goes each way, and returns both ends (left open). */
async function connect(served: Served, kind: Kind, tls: TlsClientOptions): Promise<[Transport, Transport]> {
  const client = await dial(kind, served.listener.url, tls);
  dialed.push(client);
  const server = await served.next();
  const atServer = new Probe(server);
  const atClient = new Probe(client);
  client.send(testFrame(64));
  server.send(testFrame(64));
  await until("a frame each way", () => atServer.received === 1 && atClient.received === 1);
  assert.equal(client.peerCertificate, undefined, "the dialing side reports no client certificate");
  return [client, server];
}

describe("client certificates (mutual TLS)", { skip }, () => {
  let dir: string;
  let pem: ReturnType<typeof makeCertificates>;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), "muster-mtls-"));
    pem = makeCertificates(dir);
  });
  after(() => {
    for (const t of dialed) t.close();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const kind of ["tls", "wss"] as const) {
    describe(`${kind}://`, () => {
      let served: Served;
      before(async () => {
        served = await serve(kind, { ...pem.server, ca: pem.ca.cert });
      });
      after(async () => {
        for (const t of served.accepted) t.close();
        await served.listener.close();
      });

      it("reports an authorized certificate from the CA with its CN and OU", async () => {
        const ends = await connect(served, kind, { ca: pem.ca.cert, ...pem.client });
        const peer = ends[1].peerCertificate;
        const x509 = new X509Certificate(pem.client.cert);
        assert.deepEqual(peer, {
          authorized: true,
          commonName: "web-1",
          organizationalUnits: ["agent"],
          fingerprint256: x509.fingerprint256,
          validTo: x509.validTo,
        });
      });

      it("reports a certificate not from the CA as unauthorized, with the reason", async () => {
        const ends = await connect(served, kind, { ca: pem.ca.cert, ...pem.foreign });
        const peer = ends[1].peerCertificate;
        assert.ok(peer, "the certificate is reported");
        assert.equal(peer.authorized, false);
        assert.equal(peer.authorizationError, "DEPTH_ZERO_SELF_SIGNED_CERT");
        assert.equal(peer.commonName, "intruder");
        assert.deepEqual(peer.organizationalUnits, ["agent", "ops"]);
        assert.equal(peer.fingerprint256, new X509Certificate(pem.foreign.cert).fingerprint256);
      });

      it("accepts a client that sends no certificate, with peerCertificate undefined", async () => {
        const ends = await connect(served, kind, { ca: pem.ca.cert });
        assert.equal(ends[1].peerCertificate, undefined);
        assert.equal(ends[1].open, true);
      });

      it("a listener without ca asks for no certificate: the client's is not sent", async () => {
        const plain = await serve(kind, pem.server);
        try {
          const [, server] = await connect(plain, kind, { ca: pem.ca.cert, ...pem.client });
          assert.equal(server.peerCertificate, undefined);
        } finally {
          for (const t of plain.accepted) t.close();
          await plain.listener.close();
        }
      });
    });
  }
});
