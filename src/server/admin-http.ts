import type { IncomingMessage, ServerResponse } from "node:http";
import { ErrorCode } from "../errors/codes.js";
import type { MusterError } from "../errors/muster-error.js";
import type { AdminHost, AdminIdentity } from "./admin-host.js";

/** One request to the admin API, once routed and (unless its endpoint is open) authenticated. */
export interface AdminRequest {
  req: IncomingMessage;
  res: ServerResponse;
  host: AdminHost;
  /** The decoded `:name` of the path, or "". */
  param: string;
  query: URLSearchParams;
  /** Undefined on endpoints open to anyone. */
  who: AdminIdentity | undefined;
}

/** Largest request body the admin API reads; a larger one is refused with 413 unread. */
export const MAX_ADMIN_BODY_BYTES = 64 * 1024;

const BASE_HEADERS = { "cache-control": "no-store", "x-content-type-options": "nosniff" } as const;

/** Answers with `body` unless the client is gone or an answer has started. */
export function send(
  res: ServerResponse,
  status: number,
  type: string,
  body: string,
  extra: Record<string, string> = {},
): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, { "content-type": type, ...BASE_HEADERS, ...extra });
  res.end(body);
}

export function json(
  res: ServerResponse,
  status: number,
  value: unknown,
  extra: Record<string, string> = {},
): void {
  send(res, status, "application/json", `${JSON.stringify(value)}\n`, extra);
}

/** Headers of an answer that is streamed (heap snapshots). */
export function streamHeaders(type: string, extra: Record<string, string>): Record<string, string> {
  return { "content-type": type, ...BASE_HEADERS, ...extra };
}

/** An error answer: `{ "error": "<snake_case>", "message": "…" }`. */
export function fail(
  res: ServerResponse,
  status: number,
  error: string,
  message: string,
  extra: Record<string, string> = {},
): void {
  json(res, status, { error, message }, extra);
}

/** The HTTP status of a MusterError's code; 500 for codes that mean a fault of the server. */
const STATUS: Partial<Record<ErrorCode, number>> = {
  [ErrorCode.INVALID_ARGUMENT]: 400,
  [ErrorCode.UNAUTHENTICATED]: 401,
  [ErrorCode.PERMISSION_DENIED]: 403,
  [ErrorCode.NOT_FOUND]: 404,
  [ErrorCode.RESOURCE_EXHAUSTED]: 429,
  [ErrorCode.UNIMPLEMENTED]: 501,
  [ErrorCode.UNAVAILABLE]: 503,
  [ErrorCode.CLOSED]: 503,
  [ErrorCode.DEADLINE_EXCEEDED]: 504,
};

/** The status of `err`, or undefined when it is an internal error (not to be shown). */
export function statusOf(err: MusterError): number | undefined {
  return STATUS[err.code];
}

/**
 * The request target's path (trailing slashes dropped) and query. An absolute target
 * (`http://host/path`, as proxies send) is reduced to its path.
 */
export function splitTarget(url: string): { path: string; query: URLSearchParams } {
  let raw = url;
  if (/^https?:\/\//i.test(raw)) {
    try {
      const u = new URL(raw);
      raw = `${u.pathname}${u.search}`;
    } catch {
      // left as it is: it will not match an endpoint
    }
  }
  const q = raw.indexOf("?");
  const path = (q < 0 ? raw : raw.slice(0, q)).replace(/\/+$/, "") || "/";
  return { path, query: new URLSearchParams(q < 0 ? "" : raw.slice(q + 1)) };
}

/**
 * Matches `path` against a pattern such as `/api/agents/:name`: undefined when it does not
 * match; `{ param }` (the decoded `:name`, or "" for a pattern without one) when it does;
 * `{ badEscape }` when the segment in place of `:name` is not valid percent-encoding.
 */
export function matchPath(
  pattern: string,
  path: string,
): { param: string } | { badEscape: string } | undefined {
  const want = pattern.split("/");
  const got = path.split("/");
  if (want.length !== got.length) return undefined;
  let param = "";
  for (let i = 0; i < want.length; i++) {
    const segment = got[i]!;
    if (!want[i]!.startsWith(":")) {
      if (want[i] !== segment) return undefined;
    } else if (segment === "") return undefined;
    else {
      try {
        param = decodeURIComponent(segment);
      } catch {
        return { badEscape: segment };
      }
    }
  }
  return { param };
}

/** True for `application/json` and `application/<x>+json`, with any parameters. */
export function isJsonType(contentType: string): boolean {
  const type = contentType.split(";")[0]!.trim().toLowerCase();
  return type === "application/json" || (type.startsWith("application/") && type.endsWith("+json"));
}

/** How reading a body ended. */
export type BodyResult =
  | { kind: "ok"; bytes: Buffer }
  | { kind: "too-large" }
  /** The client went away (or the request broke) before the body ended. */
  | { kind: "gone" };

/**
 * Reads a request body of at most `max` bytes. A declared or actual larger body stops the
 * reading at once (nothing more is buffered); the caller answers 413 and the connection
 * closes.
 */
export function readBody(req: IncomingMessage, max = MAX_ADMIN_BODY_BYTES): Promise<BodyResult> {
  const declared = Number(req.headers["content-length"] ?? "0");
  if (declared > max) {
    req.pause();
    return Promise.resolve({ kind: "too-large" });
  }
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (r: BodyResult): void => {
      if (done) return;
      done = true;
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("close", onGone);
      if (r.kind === "too-large") req.pause();
      resolve(r);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > max) finish({ kind: "too-large" });
      else chunks.push(chunk);
    };
    const onEnd = (): void => finish({ kind: "ok", bytes: Buffer.concat(chunks, size) });
    const onGone = (): void => finish({ kind: "gone" });
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("close", onGone);
    // A broken request also closes; 'error' needs a listener so that it does not throw.
    req.on("error", () => {});
  });
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Parses a JSON body, or says precisely why it cannot be parsed. */
export function parseJsonBody(bytes: Buffer): { ok: true; value: unknown } | { ok: false; message: string } {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return { ok: false, message: "the body is not valid UTF-8" };
  }
  if (text.trim() === "") return { ok: false, message: "the body is empty; send a JSON object" };
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (err) {
    return { ok: false, message: `the body is not valid JSON: ${(err as Error).message}` };
  }
}

/** An integer query parameter from `min` to `max`; answers 400 and returns undefined when malformed. */
export function intParam(
  c: AdminRequest,
  name: string,
  min: number,
  max: number,
  fallback: number,
): number | undefined {
  const text = c.query.get(name);
  if (text === null) return fallback;
  if (!/^\d{1,9}$/.test(text) || Number(text) < min || Number(text) > max) {
    fail(
      c.res,
      400,
      "invalid_argument",
      `${name} must be a whole number from ${min} to ${max}; got ${quote(text)}`,
    );
    return undefined;
  }
  return Number(text);
}

/** A string for a message: JSON-quoted, clipped. */
export function quote(s: string, max = 120): string {
  const t = JSON.stringify(s);
  return t.length > max ? `${t.slice(0, max - 1)}…"` : t;
}

/** What `readJsonRequest` found: the parsed body, or nothing once it has answered the error. */
export type JsonRequest = { ok: true; value: unknown } | { ok: false };

/**
 * Reads a request's JSON body: 415 for another content type, 413 (unread) beyond
 * MAX_ADMIN_BODY_BYTES, 400 for malformed JSON, each answered here; nothing when the client left.
 */
export async function readJsonRequest(c: AdminRequest): Promise<JsonRequest> {
  const type = c.req.headers["content-type"];
  if (type !== undefined && !isJsonType(type)) {
    fail(
      c.res,
      415,
      "unsupported_media_type",
      `the body must be JSON (content-type: application/json), not ${quote(type)}`,
    );
    return { ok: false };
  }
  const body = await readBody(c.req);
  if (body.kind === "gone") return { ok: false };
  if (body.kind === "too-large") {
    fail(c.res, 413, "payload_too_large", `the body is larger than ${MAX_ADMIN_BODY_BYTES} bytes`, {
      connection: "close",
    });
    return { ok: false };
  }
  const parsed = parseJsonBody(body.bytes);
  if (!parsed.ok) {
    fail(c.res, 400, "invalid_argument", parsed.message);
    return { ok: false };
  }
  return parsed;
}
