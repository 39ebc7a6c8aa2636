// Client certificates over tls:// and wss://, with certificates made by `openssl` for the run:
// a CA, a server certificate for 127.0.0.1 and localhost, a client certificate from the CA
// (CN=web-1, OU=agent) and a self-signed one that is not from it.
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { dialTcp, listenTcp } from "../src/transport/tcp.js";
import type { Listener, TlsClientOptions, TlsServerOptions, Transport } from "../src/transport/types.js";
import { dialWebSocket, listenWebSocket } from "../src/transport/websocket.js";
import { Probe, testFrame, until } from "./conformance/transport-conformance.js";
import { hasOpenssl, makeCertificates } from "./support/certs.js";

const skip = hasOpenssl
  ? false
  : "openssl is not installed: no certificates to test client authentication with";

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
