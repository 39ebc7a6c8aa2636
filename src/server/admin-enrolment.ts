import {
  type AdminRequest,
  fail,
  isJsonType,
  json,
  MAX_ADMIN_BODY_BYTES,
  parseJsonBody,
  quote,
  readBody,
} from "./admin-http.js";

/** `GET /api/enrolments`: the waiting requests, each with its fingerprint and conflict flag. */
export function listEnrolments(c: AdminRequest): void {
  json(c.res, 200, { enrolments: c.host.enrolments() });
}

/**
 * `POST /api/enrolments/:name` with `{"action":"accept"|"reject","fingerprint":"…"}`: decides a
 * waiting request. The fingerprint binds the decision to one agent's request, and is required
 * when several ask for the name; errors are the host's (404 none waits, 400 several and no
 * fingerprint, or a token that could not be issued).
 */
export async function decideEnrolment(c: AdminRequest): Promise<void> {
  const type = c.req.headers["content-type"];
  if (type !== undefined && !isJsonType(type)) {
    fail(c.res, 415, "unsupported_media_type", `the body must be JSON, not ${quote(type)}`);
    return;
  }
  const body = await readBody(c.req);
  if (body.kind === "gone") return;
  if (body.kind === "too-large") {
    fail(c.res, 413, "payload_too_large", `the body is larger than ${MAX_ADMIN_BODY_BYTES} bytes`, {
      connection: "close",
    });
    return;
  }
  const parsed = parseJsonBody(body.bytes);
  if (!parsed.ok) {
    fail(c.res, 400, "invalid_argument", parsed.message);
    return;
  }
  const v = parsed.value as { action?: unknown; fingerprint?: unknown } | null;
  const usage = 'the body must be {"action":"accept"|"reject","fingerprint":"<16 hex digits>"}';
  if (
    typeof v !== "object" ||
    v === null ||
    Array.isArray(v) ||
    (v.action !== "accept" && v.action !== "reject")
  ) {
    fail(c.res, 400, "invalid_argument", usage);
    return;
  }
  if (v.fingerprint !== undefined && typeof v.fingerprint !== "string") {
    fail(c.res, 400, "invalid_argument", usage);
    return;
  }
  const decided = c.host.decideEnrolment(v.action, c.param, c.who!, v.fingerprint);
  json(c.res, 200, { action: v.action, request: decided });
}
