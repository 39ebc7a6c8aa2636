import type { IncomingMessage, ServerResponse } from "node:http";
import { DEFAULTS } from "../internal/defaults.js";
import { formatHostPort } from "../internal/host-port.js";
import { createHttpListener, type HttpRefusal } from "./http-server.js";
import { answer, PollServerTransport } from "./long-poll-server.js";
import { DEFAULT_POLL_MS, maxBodyBytes, POLL_PATH, type PollOpen } from "./long-poll-wire.js";
import { bindServer } from "./tcp.js";
import { type TrafficCounters, trafficCounters } from "./traffic.js";
import type { AcceptFn, Listener, TlsServerOptions, TransportOptions } from "./types.js";

/** Links one listener holds at most, those waiting for their handshake or their close included. */
export const MAX_POLL_LINKS = 65_536;

export interface LongPollOptions extends TransportOptions {
  /** Links held at most; a link asked for beyond is answered 503. @default MAX_POLL_LINKS */
  maxLinks?: number;
  /** How long a GET is held with nothing to send. @default 20 s */
  pollMs?: number;
  /** Asked before a link opens (and on every request): a browser's request is refused there. */
  check?: ((req: IncomingMessage) => HttpRefusal | undefined) | undefined;
}

/**
 * The long-polling side of an HTTP listener: it answers the requests under `…/muster/poll` and
 * leaves the others to the listener.
 */
export class LongPollHost {
  readonly #links = new Map<string, PollServerTransport>();
  readonly #kind: string;
  readonly #options: LongPollOptions & { pollMs: number };
  readonly #traffic: () => TrafficCounters;
  readonly #accept: AcceptFn;
  #closed = false;

  constructor(kind: string, options: LongPollOptions, traffic: () => TrafficCounters, accept: AcceptFn) {
    this.#kind = kind;
    this.#options = { ...options, pollMs: options.pollMs ?? DEFAULT_POLL_MS };
    this.#traffic = traffic;
    this.#accept = accept;
  }

  /** Whether `req` is for long-polling (its path ends with /muster/poll). */
  handles(req: IncomingMessage): boolean {
    const path = (req.url ?? "").split("?", 1)[0]!;
    return path === `/${POLL_PATH}` || path.endsWith(`/${POLL_PATH}`);
  }

  /** Stops opening links; open ones go on. */
  close(): void {
    this.#closed = true;
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    const refusal = this.#options.check?.(req);
    const query = new URLSearchParams((req.url ?? "").split("?", 2)[1] ?? "");
    const sid = query.get("sid");
    const link = sid === null ? undefined : this.#links.get(sid);
    // Only a POST's body is read (by the link); anything else a client sends is drained.
    if (!(req.method === "POST" && link !== undefined && refusal === undefined)) req.resume();
    if (refusal !== undefined) answer(res, refusal.status, refusal.error, refusal.message);
    else if (sid === null) this.#open(req, res);
    else if (link === undefined)
      answer(res, 400, "unknown_session", "no such long-polling link (closed, or never opened)");
    else this.#request(link, req, res, query);
  }

  #open(req: IncomingMessage, res: ServerResponse): void {
    if (req.method !== "POST") {
      answer(res, 400, "bad_request", "open a link with POST, without sid");
      return;
    }
    if (this.#closed) {
      answer(res, 503, "busy", "this listener is closing");
      return;
    }
    if (this.#links.size >= (this.#options.maxLinks ?? MAX_POLL_LINKS)) {
      res.setHeader("retry-after", "1");
      answer(res, 503, "busy", "too many long-polling links: try again later");
      return;
    }
    const link = new PollServerTransport(this.#kind, req, this.#options, this.#traffic(), () =>
      this.#links.delete(link.sid),
    );
    this.#links.set(link.sid, link);
    const open: PollOpen = {
      sid: link.sid,
      pollMs: this.#options.pollMs,
      maxBodyBytes: maxBodyBytes(this.#options.maxFrameBytes ?? DEFAULTS.maxFrameBytes),
    };
    const body = JSON.stringify(open);
    res.writeHead(200, {
      "content-type": "application/json",
      "cache-control": "no-store",
      "content-length": Buffer.byteLength(body),
    });
    res.end(body);
    this.#accept(link);
  }

  #request(
    link: PollServerTransport,
    req: IncomingMessage,
    res: ServerResponse,
    query: URLSearchParams,
  ): void {
    const number = (name: string): number | undefined => {
      const v = query.get(name);
      return v !== null && /^\d{1,15}$/.test(v) ? Number(v) : undefined;
    };
    const seen = number("seen");
    const n = number("n");
    if (req.method === "GET" && seen !== undefined) link.handleGet(res, seen);
    else if (req.method === "POST" && n !== undefined) link.handlePost(req, res, n);
    else if (req.method === "DELETE") link.handleDelete(res);
    else if (req.method === "GET" || req.method === "POST") {
      req.resume();
      answer(
        res,
        400,
        "bad_request",
        req.method === "GET" ? "GET needs seen=<number>" : "POST needs n=<number>",
      );
    } else {
      res.setHeader("allow", "GET, POST, DELETE");
      answer(res, 405, "method_not_allowed", `${req.method} is not a long-polling request`);
    }
  }
}

/**
 * An HTTP(S) listener that serves long-polling links only (the ws and wss listeners serve them
 * beside WebSockets): for embedding and for testing the transport on its own.
 */
export async function listenLongPoll(
  options: LongPollOptions & { host?: string; port: number; tls?: TlsServerOptions | undefined },
  accept: AcceptFn,
): Promise<Listener> {
  const kind = options.tls ? "https" : "http";
  const host = options.host ?? "127.0.0.1";
  const poll = new LongPollHost(kind, options, () => trafficCounters(options.traffic, kind), accept);
  const { server } = createHttpListener(
    (req, res) => (poll.handles(req) ? poll.handle(req, res) : answer(res, 404, "not_found", "not found")),
    options.tls,
    {},
  );
  const port = await bindServer(server, kind, host, options.port);
  return {
    kind,
    url: `${kind}://${formatHostPort(host, port)}`,
    port,
    close: async () => {
      poll.close();
      server.close();
    },
  };
}
