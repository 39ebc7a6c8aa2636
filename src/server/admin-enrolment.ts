import { type AdminRequest, fail, json, readJsonRequest } from "./admin-http.js";

/** `GET /api/enrolments`: the waiting requests, each with its fingerprint and conflict flag. */
export function listEnrolments(c: AdminRequest): void {
  json(c.res, 200, { enrolments: c.host.enrolments() });
}

/**
 * `POST /api/enrolments/:name` with `{"action":"accept"|"reject","fingerprint":"…"}`: decides a
 * waiting request, on whichever server of the cluster holds it. The fingerprint binds the
 * decision to one agent's request, and is required when several ask for the name; errors are
 * the host's (404 none waits, 400 several and no fingerprint, or a token that could not be issued).
 */
export async function decideEnrolment(c: AdminRequest): Promise<void> {
  const parsed = await readJsonRequest(c);
  if (!parsed.ok) return;
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
  const { request, server } = await c.host.decideEnrolment(v.action, c.param, c.who!, v.fingerprint);
  // `server`: the server that applied it (in a cluster, the one the agent dialed).
  json(c.res, 200, { action: v.action, request, server });
}
