import { AsyncQueue } from "../internal/async-queue.js";

/**
 * State of an agent as the server sees it:
 * `connected` (link up), `suspect` (link up, peer silent: maybe busy), `resuming` (link lost,
 * within the resume window), `offline` (session ended; listed for a while so that fan-outs
 * report it as not connected), `pending` (an enrolment request waiting for an operator: listed,
 * never called).
 */
export type AgentState = "connected" | "suspect" | "resuming" | "offline" | "pending";

/** One agent in the server's live list. Times are epoch milliseconds. */
export interface AgentInfo {
  name: string;
  labels: Record<string, string>;
  version: string;
  state: AgentState;
  /** Remote address of the current (or last) link. */
  address: string;
  /** Transport of the current (or last) link: ws, wss, tcp, tls, grpc, grpcs, http, https, aperture or memory. */
  transport: string;
  sessionId: string;
  /** When the current session started. */
  connectedSince: number;
  /** When a frame was last received from the agent. */
  lastSeen: number;
  /** Why the agent is resuming or offline. */
  disconnectReason?: string;
  /** When the agent went offline. */
  offlineSince?: number;
  /** Calls from the server waiting for this agent. */
  pendingCalls: number;
  /** Last measured round trip in ms, or -1. */
  rttMs: number;
  /** In a cluster: the server holding the agent's session (absent on a lone server). */
  server?: string;
}

/** Changes to the agent list, as events (readable with `for await`). */
export type PresenceEvent =
  | { type: "join"; agent: AgentInfo }
  | { type: "disconnect"; agent: AgentInfo; reason: string }
  | { type: "resume"; agent: AgentInfo; replayed: number; downtimeMs: number }
  | { type: "suspect"; agent: AgentInfo }
  | { type: "recover"; agent: AgentInfo }
  | { type: "replace"; agent: AgentInfo; previousSessionId: string }
  | { type: "leave"; agent: AgentInfo; reason: string };

/** Something presence can read the live state of an agent from. */
export interface PresenceSource {
  info(): AgentInfo;
}

/**
 * The server's list of agents: live ones by session, and recently departed ones kept as
 * `offline` for `offlineRetentionMs`. Emits a PresenceEvent for every change.
 */
export class Presence {
  readonly #live = new Map<string, PresenceSource>();
  readonly #offline = new Map<string, AgentInfo>();
  readonly #subscribers = new Set<AsyncQueue<PresenceEvent>>();
  readonly #listeners = new Set<(e: PresenceEvent) => void>();

  /** The agent's live session, if any. */
  live(name: string): PresenceSource | undefined {
    return this.#live.get(name);
  }

  setLive(name: string, source: PresenceSource): void {
    this.#live.set(name, source);
    this.#offline.delete(name);
  }

  /** Moves an agent from live to offline (only if `source` is still its live session). */
  setOffline(name: string, source: PresenceSource, reason: string, now: number): AgentInfo | undefined {
    if (this.#live.get(name) !== source) return undefined;
    this.#live.delete(name);
    const info: AgentInfo = {
      ...source.info(),
      state: "offline",
      disconnectReason: reason,
      offlineSince: now,
      pendingCalls: 0,
    };
    this.#offline.set(name, info);
    return info;
  }

  /** Every known agent, live first then offline, each sorted by name. */
  list(): AgentInfo[] {
    const live = [...this.#live.values()].map((s) => s.info());
    live.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const off = [...this.#offline.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return [...live, ...off];
  }

  get(name: string): AgentInfo | undefined {
    return this.#live.get(name)?.info() ?? this.#offline.get(name);
  }

  get liveCount(): number {
    return this.#live.size;
  }

  /** Forgets offline agents that left before `before` (epoch ms). */
  prune(before: number): void {
    for (const [name, info] of this.#offline) {
      if ((info.offlineSince ?? 0) < before) this.#offline.delete(name);
    }
  }

  emit(event: PresenceEvent): void {
    for (const q of this.#subscribers) q.push(event);
    for (const fn of this.#listeners) fn(event);
  }

  /** Calls `fn` for every event; returns a function that stops it. */
  on(fn: (e: PresenceEvent) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** Events from now on, as an async iterator; `return()` (or `break`) unsubscribes. */
  events(): AsyncIterableIterator<PresenceEvent> {
    const q: AsyncQueue<PresenceEvent> = new AsyncQueue({
      maxItems: 10_000,
      onReturn: () => this.#subscribers.delete(q),
    });
    this.#subscribers.add(q);
    return q;
  }

  /** Ends every event iterator (server stopped). */
  end(): void {
    for (const q of this.#subscribers) q.end();
    this.#subscribers.clear();
  }
}
