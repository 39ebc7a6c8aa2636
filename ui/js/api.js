// Requests to the server's admin API, with the token of this tab (session storage: it goes when
// the tab closes, and never into a URL).

const KEY = "muster.token";

export function token() {
  return sessionStorage.getItem(KEY) ?? "";
}

export function setToken(value) {
  if (value) sessionStorage.setItem(KEY, value);
  else sessionStorage.removeItem(KEY);
}

/** Headers of every request: the Bearer token when there is one. */
export function authHeaders(extra = {}) {
  const t = token();
  return t ? { ...extra, authorization: `Bearer ${t}` } : extra;
}

/** An error answer of the API: status, error (snake_case) and message. */
export class ApiError extends Error {
  constructor(status, error, message) {
    super(message);
    this.status = status;
    this.error = error;
  }
}

/** Fetches `path` and parses its JSON; throws ApiError with the server's message. */
export async function api(path, { method = "GET", body, signal } = {}) {
  const headers = authHeaders(body === undefined ? {} : { "content-type": "application/json" });
  const res = await fetch(path, {
    method,
    headers,
    signal,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return answer(res);
}

/** The JSON of a response, or an ApiError. */
export async function answer(res) {
  const text = await res.text();
  let value;
  try {
    value = text === "" ? undefined : JSON.parse(text);
  } catch {
    value = undefined;
  }
  if (!res.ok) {
    throw new ApiError(res.status, value?.error ?? "http_error", value?.message ?? `HTTP ${res.status}`);
  }
  return value;
}

/**
 * The text of a streamed response cut at `separator`, each piece as soon as it is whole; what
 * follows the last separator when the response ends is the generator's return value.
 */
export async function* pieces(res, separator) {
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let rest = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return rest;
    rest += decoder.decode(value, { stream: true });
    let at = rest.indexOf(separator);
    while (at >= 0) {
      yield rest.slice(0, at);
      rest = rest.slice(at + separator.length);
      at = rest.indexOf(separator);
    }
  }
}

/** Lines of newline-delimited JSON from a streamed response, as they arrive. */
export async function* ndjson(res) {
  const lines = pieces(res, "\n");
  for (;;) {
    const { value, done } = await lines.next();
    if (value.trim() !== "") yield JSON.parse(value);
    if (done) return;
  }
}
