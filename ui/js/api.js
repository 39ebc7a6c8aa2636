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

/** Lines of newline-delimited JSON from a streamed response, as they arrive. */
export async function* ndjson(res) {
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let rest = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    rest += decoder.decode(value, { stream: true });
    let nl = rest.indexOf("\n");
    while (nl >= 0) {
      const line = rest.slice(0, nl);
      rest = rest.slice(nl + 1);
      if (line.trim() !== "") yield JSON.parse(line);
      nl = rest.indexOf("\n");
    }
  }
  if (rest.trim() !== "") yield JSON.parse(rest);
}
