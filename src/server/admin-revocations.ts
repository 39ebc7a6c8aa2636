import { decodeTokenUnverified, type TokenClaims } from "../auth/tokens.js";
import { MusterError } from "../errors/muster-error.js";
import { type AdminRequest, fail, json, readJsonRequest } from "./admin-http.js";

/** Longest reason kept with a revocation, in characters. */
export const MAX_REVOCATION_REASON_CHARS = 500;

const USAGE =
  'the body must be {"token":"<a whole token>"} or {"id":"<token id>"}, with an optional "reason":"…"';

/** `GET /api/revocations`: the revoked token ids, oldest first, with when, why and who. */
export function listRevocations(c: AdminRequest): void {
  json(c.res, 200, { revocations: c.host.revocations() });
}

/**
 * `POST /api/revocations` with `{"token":"…"}` or `{"id":"…"}`, and an optional `"reason"`:
 * revokes the token here (its sessions end at once) and, in a cluster, on every server. A whole
 * token is read without being verified (its id is what is revoked), as `muster token revoke`
 * does; the token itself is never logged nor answered.
 */
export async function revoke(c: AdminRequest): Promise<void> {
  const parsed = await readJsonRequest(c);
  if (!parsed.ok) return;
  const v = parsed.value as { token?: unknown; id?: unknown; reason?: unknown } | null;
  if (typeof v !== "object" || v === null || Array.isArray(v))
    return void fail(c.res, 400, "invalid_argument", USAGE);
  const unknown = Object.keys(v).filter((k) => k !== "token" && k !== "id" && k !== "reason");
  if (unknown.length > 0 || (v.token === undefined) === (v.id === undefined))
    return void fail(c.res, 400, "invalid_argument", USAGE);
  if (
    v.reason !== undefined &&
    (typeof v.reason !== "string" || v.reason.length > MAX_REVOCATION_REASON_CHARS)
  )
    return void fail(
      c.res,
      400,
      "invalid_argument",
      `reason must be a string of at most ${MAX_REVOCATION_REASON_CHARS} characters`,
    );
  let claims: TokenClaims | undefined;
  let id: string;
  if (v.token !== undefined) {
    if (typeof v.token !== "string") return void fail(c.res, 400, "invalid_argument", USAGE);
    try {
      claims = decodeTokenUnverified(v.token);
    } catch (err) {
      return void fail(c.res, 400, "invalid_argument", MusterError.from(err).rawMessage);
    }
    id = claims.id;
  } else {
    if (typeof v.id !== "string") return void fail(c.res, 400, "invalid_argument", USAGE);
    id = v.id;
  }
  const outcome = await c.host.revoke(id, v.reason, c.who!);
  json(c.res, 200, {
    ...outcome,
    ...(claims !== undefined
      ? {
          token: {
            role: claims.role,
            subject: claims.subject,
            expiresAt: claims.expiresAt === undefined ? null : new Date(claims.expiresAt).toISOString(),
          },
        }
      : {}),
  });
}
