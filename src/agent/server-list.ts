import { NETWORK_PROTOCOLS, SECURE_PROTOCOLS } from "../transport/schemes.js";
import type { WelcomeServerState, WelcomeServers } from "../wire/frame.js";

/**
 * Where a dialer starts: `shuffle` starts every agent at a random place of its configured
 * list (gRFC A62), so that a fleet given the same list spreads over the servers instead of
 * piling onto the first; `ordered` starts at the first URL and keeps the list's order.
 */
export type ServerOrder = "shuffle" | "ordered";

/** The default `serverOrder` of agents. */
export const DEFAULT_SERVER_ORDER: ServerOrder = "shuffle";

/** One server a dialer may dial, as `agent.servers` lists it. */
export interface KnownServer {
  /** The URL dialed for it. */
  readonly url: string;
  /** `configured`: from the `servers` option, never forgotten; `learned`: from the last WELCOME. */
  readonly source: "configured" | "learned";
  /** The cluster server behind the URL, when the last WELCOME named it. */
  readonly name?: string;
  /** Its load as last announced (lower is less loaded); absent when unknown. */
  readonly load?: number;
  /** `draining` when announced so, or when it said it shuts down; absent when not known. */
  readonly state?: WelcomeServerState;
}

/** The server for the next attempt, and why it was picked (for the logs). */
export interface ServerPick {
  url: string;
  why: string;
}

export interface ServerListOptions {
  /** The configured URLs: kept whatever a WELCOME announces. At least one. */
  configured: readonly string[];
  /** @default "shuffle" */
  order?: ServerOrder;
  /** Uniform in [0, 1): the shuffle and the choice between equally good servers. @default Math.random */
  random?: () => number;
  /**
   * Whether this dialer can dial URLs of `protocol` (`"tcp:"`, with the colon). Learned URLs of
   * other schemes are not taken. @default the schemes of TRANSPORT_SCHEMES
   */
  canDial?: (protocol: string) => boolean;
}

/** What `learn` made of an announcement: URLs taken, and servers left out (no URL usable). */
export interface LearnResult {
  learned: number;
  matchedConfigured: number;
  unusable: string[];
}

interface Entry {
  url: string;
  /** Comparison key: scheme, host (lower case), port and path. */
  key: string;
  protocol: string;
  source: "configured" | "learned";
  name?: string;
  load?: number;
  state?: WelcomeServerState;
}

function parse(url: string): URL | undefined {
  try {
    return new URL(url);
  } catch {
    return undefined;
  }
}

function keyOf(url: string, parsed = parse(url)): string {
  if (parsed === undefined) return url;
  // memory:// names are case-sensitive; network host names are not.
  const host = parsed.protocol === "memory:" ? parsed.host : parsed.host.toLowerCase();
  return `${parsed.protocol}//${host}${parsed.pathname}${parsed.search}`;
}

function securityOf(protocol: string): "secure" | "plain" | "other" {
  return SECURE_PROTOCOLS.has(protocol) ? "secure" : NETWORK_PROTOCOLS.has(protocol) ? "plain" : "other";
}

/**
 * The servers a dialer knows and the choice of the next one to dial (docs/protocol.md §9.8).
 * Pure: no timers, sockets or logs; the caller reports each `ServerPick.why`.
 *
 * - The list is the configured URLs (shuffled once unless `ordered`), then the URLs learned
 *   from the last WELCOME, one per announced server that no configured URL reaches.
 * - `first()` is the head of the list; `resume()` the server of the last connection.
 * - `next(failed)` moves on: URLs not yet tried since the last connection, `draining` ones
 *   skipped; among those with a known load the less loaded of two picked at random (two
 *   choices: agents leaving one server together do not all land on the same least-loaded one;
 *   with only two candidates, one at random with a chance that falls with its load;
 *   `ordered` takes the least loaded), else the next in the list after `failed`. When all were
 *   tried a new round starts; draining servers are tried only when nothing else is left.
 */
export class ServerList {
  readonly #order: ServerOrder;
  readonly #random: () => number;
  readonly #canDial: (protocol: string) => boolean;
  #entries: Entry[];
  #view: readonly KnownServer[] | undefined;
  /** The URL of the last successful connection. */
  #previous: string | undefined;
  /** Keys of the URLs that failed since the last successful connection. */
  readonly #tried = new Set<string>();

  constructor(options: ServerListOptions) {
    if (options.configured.length === 0) throw new RangeError("ServerList: no configured URL");
    this.#order = options.order ?? DEFAULT_SERVER_ORDER;
    this.#random = options.random ?? Math.random;
    this.#canDial = options.canDial ?? ((p) => NETWORK_PROTOCOLS.has(p));
    const seen = new Set<string>();
    const configured: Entry[] = [];
    for (const url of options.configured) {
      const parsed = parse(url);
      const key = keyOf(url, parsed);
      if (seen.has(key)) continue;
      seen.add(key);
      configured.push({ url, key, protocol: parsed?.protocol ?? "", source: "configured" });
    }
    if (this.#order === "shuffle") this.#shuffle(configured);
    this.#entries = configured;
  }

  /** The list, configured URLs first: a snapshot, replaced on every change. */
  get servers(): readonly KnownServer[] {
    this.#view ??= Object.freeze(
      this.#entries.map((e) =>
        Object.freeze({
          url: e.url,
          source: e.source,
          ...(e.name !== undefined ? { name: e.name } : {}),
          ...(e.load !== undefined ? { load: e.load } : {}),
          ...(e.state !== undefined ? { state: e.state } : {}),
        }),
      ),
    );
    return this.#view;
  }

  /** The server of the first attempt. */
  first(): ServerPick {
    const head = this.#entries[0]!;
    const n = this.#entries.length;
    const why =
      n === 1
        ? "the only configured server"
        : this.#order === "shuffle"
          ? `a random start among ${n} configured servers`
          : "the first configured server";
    return { url: head.url, why };
  }

  /** A connection to `url` succeeded. */
  connected(url: string): void {
    this.#previous = url;
    this.#tried.clear();
  }

  /** The server of the attempt after a dropped link: the one the session lives on. */
  resume(): ServerPick {
    if (this.#previous === undefined) return this.first();
    return { url: this.#previous, why: "the previous server first, to resume the session there" };
  }

  /** The server `url` said it is draining (CLOSE `shutdown`): skipped until a WELCOME says otherwise. */
  draining(url: string): void {
    const key = keyOf(url);
    const entry = this.#entries.find((e) => e.key === key);
    if (entry !== undefined && entry.state !== "draining") {
      entry.state = "draining";
      this.#view = undefined;
    }
  }

  /** The attempt at `failed` failed, or its server sent this dialer away: the next server. */
  next(failed: string): ServerPick {
    const failedKey = keyOf(failed);
    const failedEntry = this.#entries.find((e) => e.key === failedKey);
    this.#tried.add(failedKey);
    let candidates = this.#entries.filter((e) => !this.#tried.has(e.key) && e.state !== "draining");
    let round = "";
    if (candidates.length === 0) {
      // Every server failed once since the last connection: a new round, from the next one.
      this.#tried.clear();
      this.#tried.add(failedKey);
      candidates = this.#entries.filter((e) => e.key !== failedKey && e.state !== "draining");
      round = "; every server tried, a new round";
    }
    if (candidates.length === 0) {
      candidates = this.#entries.filter((e) => e.key !== failedKey);
      round = "; only draining servers are left";
    }
    if (candidates.length === 0) return { url: failed, why: "no other server to try" };

    const start = failedEntry === undefined ? -1 : this.#entries.indexOf(failedEntry);
    const n = this.#entries.length;
    const distance = (e: Entry): number => (this.#entries.indexOf(e) - start + n) % n || n;
    const loaded = candidates.filter((e) => e.load !== undefined);
    if (loaded.length > 0) {
      const better = (a: Entry, b: Entry): Entry =>
        a.load! < b.load! || (a.load === b.load && distance(a) <= distance(b)) ? a : b;
      if (loaded.length === 1) {
        return { url: loaded[0]!.url, why: `the only untried server with a known load${round}` };
      }
      if (this.#order === "ordered") {
        const best = loaded.reduce(better);
        return { url: best.url, why: `the least loaded server not yet tried (load ${best.load})${round}` };
      }
      if (loaded.length === 2) {
        // Two choices of two is no choice: every agent leaving a server together would pick the
        // same one. Each is picked with a chance that falls with its (perhaps stale) load.
        const [a, b] = loaded as [Entry, Entry];
        const pickA = this.#random() < (b.load! + 1) / (a.load! + b.load! + 2);
        const pick = pickA ? a : b;
        return {
          url: pick.url,
          why: `one of two servers, picked at random weighted by load (load ${pick.load})${round}`,
        };
      }
      const i = Math.floor(this.#random() * loaded.length) % loaded.length;
      let j = Math.floor(this.#random() * (loaded.length - 1)) % (loaded.length - 1);
      if (j >= i) j++;
      const best = better(loaded[i]!, loaded[j]!);
      return {
        url: best.url,
        why: `the less loaded of two servers picked at random (load ${best.load})${round}`,
      };
    }
    const best = candidates.reduce((a, b) => (distance(a) <= distance(b) ? a : b));
    return { url: best.url, why: `the next server in the list${round}` };
  }

  /**
   * Takes a WELCOME's `servers`, received on a link to `via` from the server named `viaName`:
   * learned URLs are replaced, configured ones keep their place and take the announced name,
   * load and state of the server they reach. `undefined` (a server outside a cluster) forgets
   * what was learned.
   */
  learn(announced: WelcomeServers | undefined, via: string, viaName: string): LearnResult {
    const result: LearnResult = { learned: 0, matchedConfigured: 0, unusable: [] };
    const configured = this.#entries.filter((e) => e.source === "configured");
    for (const e of configured) {
      if (e.name !== undefined) delete e.name;
      if (e.load !== undefined) delete e.load;
      if (e.state !== undefined) delete e.state;
    }
    if (announced === undefined || announced.length === 0) {
      // Outside a cluster, on every resume of a fleet's worth of agents: nothing to parse.
      if (this.#entries.length !== configured.length) this.#entries = configured;
      this.#view = undefined;
      return result;
    }
    const byKey = new Map(configured.map((e) => [e.key, e]));
    const viaParsed = parse(via);
    const viaProtocol = viaParsed?.protocol ?? "";
    const viaKey = keyOf(via, viaParsed);
    const learned: Entry[] = [];
    for (const server of announced ?? []) {
      // The server this link reaches is reached at the URL in use, whatever it announces.
      const urls = server.name === viaName ? [via, ...server.urls] : server.urls;
      const usable: Array<{ url: string; key: string; protocol: string }> = [];
      for (const url of urls) {
        const parsed = parse(url);
        if (parsed === undefined || parsed.username !== "" || parsed.password !== "") continue;
        if (!this.#canDial(parsed.protocol)) continue;
        // A dialer on a secure link takes no plain URL: it would present its credential in clear.
        if (securityOf(viaProtocol) === "secure" && securityOf(parsed.protocol) !== "secure") continue;
        usable.push({ url, key: keyOf(url, parsed), protocol: parsed.protocol });
      }
      const attrs = {
        name: server.name,
        ...(server.load !== undefined ? { load: server.load } : {}),
        ...(server.state !== undefined ? { state: server.state } : {}),
      };
      const match = usable.map((u) => byKey.get(u.key)).find((e) => e !== undefined && e.name === undefined);
      if (match !== undefined) {
        Object.assign(match, attrs);
        result.matchedConfigured++;
        continue;
      }
      if (usable.some((u) => learned.some((e) => e.key === u.key))) continue;
      if (usable.length === 0) {
        result.unusable.push(server.name);
        continue;
      }
      const rank = (u: { key: string; protocol: string }): number =>
        u.key === viaKey
          ? 0
          : u.protocol === viaProtocol
            ? 1
            : securityOf(u.protocol) === securityOf(viaProtocol)
              ? 2
              : 3;
      const best = usable.reduce((a, b) => (rank(b) < rank(a) ? b : a));
      learned.push({ url: best.url, key: best.key, protocol: best.protocol, source: "learned", ...attrs });
    }
    if (this.#order === "shuffle") this.#shuffle(learned);
    result.learned = learned.length;
    this.#entries = [...configured, ...learned];
    this.#view = undefined;
    return result;
  }

  #shuffle(a: Entry[]): void {
    for (let i = a.length - 1; i > 0; i--) {
      const j = Math.floor(this.#random() * (i + 1)) % (i + 1);
      [a[i], a[j]] = [a[j]!, a[i]!];
    }
  }
}
