import { X509Certificate } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import type { PeerCertificate, TlsClientOptions, TlsServerOptions } from "./types.js";

const toBuffer = (pem: string | Buffer): Buffer => (typeof pem === "string" ? Buffer.from(pem) : pem);

/**
 * A certificate provider that hands out fixed material to every listener, on the next tick:
 * grpc-js registers the listener first and only then the server that reads it.
 */
function fixedProvider(update: { ca?: Buffer; identity?: { certificate: Buffer; privateKey: Buffer } }) {
  return {
    addCaCertificateListener: (listener: (u: grpc.experimental.CaCertificateUpdate | null) => void) =>
      process.nextTick(listener, update.ca ? { caCertificate: update.ca } : null),
    removeCaCertificateListener: () => {},
    addIdentityCertificateListener: (
      listener: (u: grpc.experimental.IdentityCertificateUpdate | null) => void,
    ) => process.nextTick(listener, update.identity ?? null),
    removeIdentityCertificateListener: () => {},
  };
}

/**
 * The server's credentials: none for grpc://; its certificate for grpcs://. With `tls.ca`, a
 * client certificate is asked for but not required, as on tls:// and wss://: the server refuses
 * at its handshake, where it can say why.
 */
export function grpcServerCredentials(tls: TlsServerOptions | undefined): grpc.ServerCredentials {
  if (!tls) return grpc.ServerCredentials.createInsecure();
  const identity = { certificate: toBuffer(tls.cert), privateKey: toBuffer(tls.key) };
  if (tls.ca === undefined)
    return grpc.ServerCredentials.createSsl(null, [
      { cert_chain: identity.certificate, private_key: identity.privateKey },
    ]);
  const ca = Buffer.concat((Array.isArray(tls.ca) ? tls.ca : [tls.ca]).map((c) => toBuffer(c)));
  // One provider of both: grpc-js 1.14 passes the two providers to its constructor swapped.
  const provider = fixedProvider({ ca, identity });
  return grpc.experimental.createCertificateProviderServerCredentials(provider, provider, false);
}

/** The dialer's credentials and the channel options they need (the name to verify). */
export function grpcChannelCredentials(
  secure: boolean,
  tls: TlsClientOptions | undefined,
  host: string,
): { credentials: grpc.ChannelCredentials; options: grpc.ChannelOptions } {
  if (!secure) return { credentials: grpc.credentials.createInsecure(), options: {} };
  const t = tls ?? {};
  const verify: grpc.VerifyOptions = t.insecure
    ? { rejectUnauthorized: false, checkServerIdentity: () => undefined }
    : {};
  const credentials = grpc.credentials.createSsl(
    t.ca !== undefined ? toBuffer(t.ca) : null,
    t.key !== undefined ? toBuffer(t.key) : null,
    t.cert !== undefined ? toBuffer(t.cert) : null,
    verify,
  );
  const name = t.servername ?? host;
  return { credentials, options: name !== host ? { "grpc.ssl_target_name_override": name } : {} };
}

/**
 * The client certificate of a grpcs:// call. grpc-js shows it only when it verified against the
 * listener's `ca`: one that fails verification looks like none (the server then refuses the
 * link for the lack of one).
 */
export function peerCertificateOf(
  call: grpc.ServerDuplexStream<unknown, unknown>,
): PeerCertificate | undefined {
  const cert = call.getAuthContext().sslPeerCertificate;
  if (!cert?.raw) return undefined;
  const x509 = new X509Certificate(cert.raw);
  const subject = (cert.subject ?? {}) as { CN?: string | string[]; OU?: string | string[] };
  const list = (v: string | string[] | undefined): string[] =>
    v === undefined ? [] : Array.isArray(v) ? v : [v];
  const out: PeerCertificate = {
    authorized: true,
    organizationalUnits: list(subject.OU),
    fingerprint256: x509.fingerprint256,
    validTo: cert.valid_to,
  };
  const commonName = list(subject.CN)[0];
  if (commonName !== undefined) out.commonName = commonName;
  return out;
}
