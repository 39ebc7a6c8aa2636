import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import type { Logger } from "../internal/logger.js";
import type { Fleet } from "../server/fleet.js";
import type { Handoff, Takeover } from "../server/handshake.js";
import type { Peer } from "../server/peer.js";
import { CloseCode, type HelloBody, type WelcomeServers } from "../wire/frame.js";
import type { BusMessage, ClusterBus } from "./bus.js";
import { decodeEnvelope, encodeEnvelope } from "./envelope.js";
import type { ClusterSubjects } from "./node-subjects.js";

/** How long a server waits for the holder of a session to hand it over. */
export const HANDOFF_REQUEST_MS = 2000;

/** The id of the server a resume token names (`<serverId>.<random>`), if any. */
export function tokenOwner(token: string): string | undefined {
  const dot = token.indexOf(".");
  return dot > 0 ? token.slice(0, dot) : undefined;
}

export interface HandoffOptions {
  bus: ClusterBus;
  subjects: ClusterSubjects;
  fleet: Fleet;
  serverName: string;
  logger: Logger;
  /** Whether the server with this id is alive (per the registry). */
  isLive(serverId: string): boolean;
  /** The cluster's servers now, sent with CLOSE `moved` so that agents go to one that is up. */
  servers?(): WelcomeServers | undefined;
}

/**
 * Sessions moving between servers of a cluster when one drains. The draining server tells
 * each agent (CLOSE `moved`) to resume elsewhere; the server the agent reaches asks the holder
 * (named by the resume token) for the session — sequence numbers, unacknowledged frames, the
 * next call id — in one request, and resumes it: nothing lost, repeated or reordered. Only
 * sessions with no call or stream in flight move (the drain waits for those first); any other
 * case is an explicit `expired` at the new server, never a silent loss.
 */
export class SessionHandoff implements Takeover {
  readonly #o: HandoffOptions;
  /** Sessions this draining server told to move, not yet taken. */
  readonly #moving = new Set<Peer>();
  #onTaken: (() => void) | undefined;
  /** Sessions told to move and taken over, in the current handover. */
  #taken = 0;

  constructor(o: HandoffOptions) {
    this.#o = o;
  }

  // --- the server the agent comes to -----------------------------------------------------------

  claimable(token: string): boolean {
    const owner = tokenOwner(token);
    return owner !== undefined && owner !== this.#o.subjects.selfId && this.#o.isLive(owner);
  }

  async take(token: string, hello: HelloBody): Promise<Handoff | undefined> {
    const owner = tokenOwner(token) as string;
    const { bus, subjects, logger } = this.#o;
    let reply: BusMessage;
    try {
      reply = await bus.request(
        subjects.node(owner, "handoff"),
        encodeEnvelope({ t: "handoff", token, name: hello.name, role: hello.role, to: this.#o.serverName }),
        { timeoutMs: HANDOFF_REQUEST_MS },
      );
    } catch (err) {
      logger.info(
        { peer: hello.name, err: (err as Error).message },
        "handoff not had: the session is new here",
      );
      return undefined;
    }
    try {
      const { head, blobs } = decodeEnvelope(reply.data);
      if (head.t !== "session") {
        logger.info({ peer: hello.name, why: String(head.why) }, "handoff refused by the holder");
        return undefined;
      }
      const nFrames = Number(head.frames);
      const frames = blobs.slice(0, nFrames);
      const backlog = blobs.slice(nFrames);
      return {
        id: String(head.id),
        connectedSince: Number(head.connectedSince),
        subject: String(head.subject),
        role: String(head.role),
        nextCallId: Number(head.nextCallId),
        snapshot: {
          lastReceived: Number(head.lastReceived),
          lastSent: Number(head.lastSent),
          firstSeq: Number(head.firstSeq),
          frames,
          backlog,
        },
      };
    } catch (err) {
      logger.warn({ peer: hello.name, err: (err as Error).message }, "handoff: malformed answer");
      return undefined;
    }
  }

  // --- the server that holds the session ----------------------------------------------------------

  /** A request for one of this server's sessions: it is given, or refused with a reason. */
  onRequest(msg: BusMessage): void {
    const refuse = (why: string) => msg.respond(encodeEnvelope({ t: "refused", why }));
    let head: Record<string, unknown>;
    try {
      head = decodeEnvelope(msg.data).head;
    } catch (err) {
      refuse((err as Error).message);
      return;
    }
    const peer = typeof head.token === "string" ? this.#o.fleet.byToken(head.token) : undefined;
    if (peer === undefined || peer.ended) return void refuse("no such session here");
    if (peer.name !== head.name || peer.role !== head.role)
      return void refuse("the session is another peer's");
    if (peer.session.transport !== undefined) return void refuse("the session is connected here");
    if (peer.rpc.pendingOutgoing + peer.rpc.runningIncoming > 0)
      return void refuse("the session has calls in flight");
    let body: Uint8Array;
    try {
      const s = peer.session.snapshot();
      body = encodeEnvelope(
        {
          t: "session",
          id: peer.id,
          connectedSince: peer.connectedSince,
          subject: peer.identity.subject,
          role: peer.identity.role,
          nextCallId: peer.rpc.nextCallId,
          lastReceived: s.lastReceived,
          lastSent: s.lastSent,
          firstSeq: s.firstSeq,
          frames: s.frames.length,
        },
        [...s.frames, ...s.backlog],
      );
    } catch (err) {
      return void refuse(MusterError.from(err).rawMessage);
    }
    if (body.byteLength > this.#o.bus.maxPayload)
      return void refuse(
        `the session's unacknowledged frames (${body.byteLength} bytes) exceed the backplane's max payload`,
      );
    if (!msg.respond(body)) return;
    const to = typeof head.to === "string" ? head.to : "another server";
    this.#o.logger.info({ peer: peer.name, to }, "session handed over");
    this.#moving.delete(peer);
    this.#taken++;
    // Ended here without a word to anyone: the session lives on at the other server.
    this.#o.fleet.end(peer, ErrorCode.CLOSED, `handed over to server ${to}`, CloseCode.NORMAL, false);
    this.#onTaken?.();
  }

  /**
   * A drain's handover: each agent session is told to move (CLOSE `moved`) as soon as it has
   * nothing in flight, so that the fleet leaves a bit at a time while calls go on (a session
   * keeps serving its calls here until then). Sessions still busy after `idleTimeoutMs` are
   * left; resolves when every session told to move was taken over, `takeTimeoutMs` after the
   * last was told, or as soon as `othersReady` says no other server takes sessions (those left
   * then end as on any shutdown).
   */
  async handOver(
    idleTimeoutMs: number,
    takeTimeoutMs: number,
    othersReady: () => boolean = () => true,
  ): Promise<{ moved: number; left: number }> {
    const { fleet, logger } = this.#o;
    const start = performance.now();
    this.#taken = 0;
    let asked = 0;
    let lastAsk = start;
    let servers: ReturnType<NonNullable<HandoffOptions["servers"]>>;
    let serversAt = Number.NEGATIVE_INFINITY;
    const busy = (peer: Peer): boolean => peer.rpc.pendingOutgoing + peer.rpc.runningIncoming > 0;
    const agents = (): Peer[] => [...fleet.peers].filter((p) => p.role === "agent" && !p.ended);
    logger.info(
      { sessions: agents().length, idleTimeoutMs, takeTimeoutMs },
      "draining: handing the sessions over to the other servers as each is idle",
    );
    for (;;) {
      // No other server takes sessions any more (the whole cluster is stopping): the sessions
      // left end here, rather than going round the draining servers until their timeouts.
      if (!othersReady()) {
        logger.info("no other server is ready: the sessions left end here");
        break;
      }
      const now = performance.now();
      const idlePhase = now - start < idleTimeoutMs;
      let waiting = 0;
      for (const peer of agents()) {
        // Told already and not back here: the other server is taking it.
        if (peer.moving && peer.session.transport === undefined) continue;
        if (busy(peer) || peer.session.transport === undefined) {
          // Busy, or its link is down (it may come back here): later, while there is time.
          if (idlePhase) waiting++;
          continue;
        }
        if (now - serversAt > 1000) {
          // A snapshot of the registry for the agents sent away: where to go, as of now.
          servers = this.#o.servers?.();
          serversAt = now;
        }
        if (!peer.moving) asked++;
        peer.moving = true;
        this.#moving.add(peer);
        lastAsk = now;
        fleet.dropLink(
          peer,
          CloseCode.MOVED,
          "the server is draining: resume the session on another server",
          servers !== undefined ? { servers } : undefined,
        );
      }
      const taking = this.#moving.size > 0 && now - lastAsk < takeTimeoutMs;
      if (waiting === 0 && !taking) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 20);
        this.#onTaken = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#onTaken = undefined;
    }
    this.#moving.clear();
    // Every agent session still here ends with the server: told to move but not taken, busy
    // past the drain timeout, or away and not back.
    const left = agents().length;
    if (left > 0)
      logger.warn({ left, moved: this.#taken }, "handoff timeout: sessions not taken over end here");
    else if (asked > 0) logger.info({ moved: this.#taken }, "every session was taken over");
    return { moved: this.#taken, left };
  }
}
