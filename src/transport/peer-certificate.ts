import type { Socket } from "node:net";
import { TLSSocket } from "node:tls";
import type { PeerCertificate } from "./types.js";

/** A subject field as Node gives it: absent, one value, or an array when it is repeated. */
function values(field: string | string[] | undefined): string[] {
  if (field === undefined) return [];
  return Array.isArray(field) ? field : [field];
}

/**
 * The client certificate of the accepting side of a TLS connection, read once its handshake
 * is done; undefined for a plain socket or when the client sent none (Node then gives an
 * empty object).
 */
export function readPeerCertificate(socket: Socket | undefined): PeerCertificate | undefined {
  if (!(socket instanceof TLSSocket)) return undefined;
  const cert = socket.getPeerCertificate();
  if (!cert?.fingerprint256) return undefined;
  const subject = (cert.subject ?? {}) as { CN?: string | string[]; OU?: string | string[] };
  const out: PeerCertificate = {
    authorized: socket.authorized,
    organizationalUnits: values(subject.OU),
    fingerprint256: cert.fingerprint256,
    validTo: cert.valid_to,
  };
  const commonName = values(subject.CN)[0];
  if (commonName !== undefined) out.commonName = commonName;
  // Typed as an Error, but Node sets OpenSSL's code, a string.
  const why: unknown = socket.authorizationError;
  if (!socket.authorized && why) out.authorizationError = String(why);
  return out;
}
