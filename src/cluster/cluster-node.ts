import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import type { Logger } from "../internal/logger.js";
import { VERSION } from "../internal/version.js";
import type { AgentInfo, PresenceEvent } from "../presence/presence.js";
import { welcomeServers as checkedList } from "../server/announce.js";
import type { Fleet } from "../server/fleet.js";
import type { Attachment, HandoffResult } from "../server/lifecycle.js";
import type { LocalReach } from "../server/router.js";
import type { ServerInfo } from "../server/server-info.js";
import { NETWORK_PROTOCOLS } from "../transport/schemes.js";
import type { Listener } from "../transport/types.js";
import type { DecodeLimits } from "../wire/codec.js";
import { CloseCode, WELCOME_SERVERS_LIMITS, type WelcomeServers } from "../wire/frame.js";
import type { BusMessage, BusStatus, BusSubscription, ClusterBus } from "./bus.js";
import { callAsStream } from "./call-stream.js";
import { ClusterReach, type ClusterView } from "./cluster-reach.js";
import {
  AgentDirectory,
  type AgentRecord,
  type DirectoryEvent,
  type DirectoryState,
  isNewer,
} from "./directory.js";
import { decodeEnvelope, encodeEnvelope } from "./envelope.js";
import { SessionHandoff } from "./handoff.js";
import { ClusterSubjects } from "./node-subjects.js";
import { PartRunner } from "./part-runner.js";
import { type RegistryEvent, ServerRegistry } from "./registry.js";
import { type Owner, RemoteCalls } from "./remote-calls.js";
import { type SharedHost, SharedState } from "./shared-state.js";
import { isStreamMessage, StreamRelay } from "./stream-relay.js";

/** Registry changes within this long are told to the agents once. */
const ANNOUNCE_DEBOUNCE_MS = 1000;

export interface ClusterNodeOptions {
  bus: ClusterBus;
  /** Subject prefix and bucket names are derived from it. */
  clusterName: string;
  serverName: string;
  logger: Logger;
  fleet: Fleet;
  local: LocalReach;
  /** Agents with a session on this server now (the load figure in the registry record). */
  agents(): number;
  refreshMs?: number;
  /** How long a draining server waits for its sessions to be taken over. @default 10000 */
  handoffTimeoutMs?: number;
  /** Replaces the host of listener URLs in the registry (else 0.0.0.0 and :: become the host name). */
  advertiseHost?: string;
  /** Replaces the listener URLs in the registry, whole (checked by `checkAdvertised`). */
  advertise?: readonly string[];
  /** Limits on items and results of streams relayed from other servers. @default the fleet host's */
  decodeLimits?: DecodeLimits;
  /** Revocations, enrolments and runtime flags to share with the cluster (`shared-state.ts`). */
  shared?: SharedHost;
}

/** How often calls waiting on another server check that it still listens, in ms. */
const PROBE_EVERY_MS = 1000;

/**
 * One server's membership of a cluster: its registry record, the presence of its agents in the
 * shared directory, and the relay of calls to and from other servers. Everything goes through
 * a ClusterBus, so the same code runs on the in-memory bus and on NATS.
 */
export class ClusterNode implements ClusterView, Attachment {
  readonly id = randomBytes(6).toString("hex");
  readonly subjects: ClusterSubjects;
  readonly reach: ClusterReach;
  readonly remote: RemoteCalls;
  readonly runner: PartRunner;
  readonly streams: StreamRelay;
  readonly handoff: SessionHandoff;
  readonly #o: ClusterNodeOptions;
  #registry: ServerRegistry | undefined;
  /** Ids of the other servers alive now (from the registry's up and down events). */
  readonly #live = new Set<string>();
  #directory: AgentDirectory | undefined;
  #shared: SharedState | undefined;
  #inbox: BusSubscription | undefined;
  readonly #stops: Array<() => void> = [];
  readonly #lag = monitorEventLoopDelay({ resolution: 20 });
  #busStatus: BusStatus;
  /** The next attempt to write presence changes the backplane missed (see `#resync`). */
  #resyncTimer: NodeJS.Timeout | undefined;
  #resyncDelayMs = 0;
  #stopped = false;
  /** The servers the agents were last told of (names, URLs, states), to tell them only changes. */
  #announced: string | undefined;
  #announceTimer: NodeJS.Timeout | undefined;

  constructor(o: ClusterNodeOptions) {
    if (o.advertise !== undefined) {
      if (o.advertiseHost !== undefined) throw new RangeError("give advertise or advertiseHost, not both");
      checkAdvertised(o.advertise);
    }
    this.#o = o;
    this.subjects = new ClusterSubjects(`muster.${o.clusterName}`, this.id);
    this.remote = new RemoteCalls(o.bus, this.subjects, o.logger);
    this.runner = new PartRunner(
      o.bus,
      this.subjects,
      (name, method, payload, timeoutMs, cb, origin) =>
        o.local.start(name, method, payload, timeoutMs, cb, origin),
      o.serverName,
      o.logger,
    );
    // The server's own limits (its fleet's host is the server) unless given.
    const decodeLimits = o.decodeLimits ?? (o.fleet.host as { decodeLimits?: DecodeLimits }).decodeLimits;
    this.streams = new StreamRelay({
      bus: o.bus,
      subjects: this.subjects,
      openLocal: (agent, name, request, options, asCall) =>
        asCall
          ? callAsStream(o.local, agent, name, request, options, decodeLimits ?? {})
          : o.local.openStream(agent, name, request, options),
      serverName: o.serverName,
      logger: o.logger,
      decodeLimits,
    });
    this.reach = new ClusterReach(o.local, this, this.remote, this.streams);
    // A call whose agent moved away from its server follows it to its new one.
    this.remote.reroute = (...args) => this.reach.reroute(...args);
    this.handoff = new SessionHandoff({
      bus: o.bus,
      subjects: this.subjects,
      fleet: o.fleet,
      serverName: o.serverName,
      logger: o.logger,
      isLive: (id) => this.#live.has(id) && o.bus.status === "connected",
      // Checked as a WELCOME's list is: a list beyond the limits is not sent at all.
      servers: () => checkedList(() => this.welcomeServers(), o.logger).servers,
    });
    this.#busStatus = o.bus.status;
  }

  get self(): string {
    return this.#o.serverName;
  }

  /** Revocations, enrolments and flags shared with the cluster (after `start`, with `shared`). */
  get shared(): SharedState | undefined {
    return this.#shared;
  }

  /** `degraded` while the backplane is unreachable: local agents are served, others are not. */
  get health(): "ok" | "degraded" {
    return this.#busStatus === "connected" ? "ok" : "degraded";
  }

  /** The load figures of the registry record: agents here, event-loop lag (p99 since last time). */
  #load(): { agents: number; lagMs: number } {
    const lagMs = Math.round(this.#lag.percentile(99) / 1e4) / 100;
    this.#lag.reset();
    return { agents: this.#o.agents(), lagMs: Number.isFinite(lagMs) ? lagMs : 0 };
  }

  async start(listeners: readonly Listener[]): Promise<void> {
    const { bus, logger, clusterName, serverName } = this.#o;
    this.#lag.enable();
    this.#inbox = bus.subscribe(this.subjects.inbox, (m) => this.#onMessage(m));
    this.#stops.push(bus.onStatus((s) => this.#onBusStatus(s)));
    this.#directory = new AgentDirectory({
      bus,
      bucket: `muster_${clusterName}_agents`,
      serverName,
      serverId: this.id,
      logger,
    });
    this.#registry = new ServerRegistry({
      bus,
      bucket: `muster_${clusterName}_servers`,
      name: serverName,
      id: this.id,
      urls:
        this.#o.advertise !== undefined
          ? [...this.#o.advertise]
          : listeners.map((l) => advertisedUrl(l.url, this.#o.advertiseHost)),
      version: VERSION,
      capabilities: ["calls", "fan-out", "streams"],
      load: () => this.#load(),
      refreshMs: this.#o.refreshMs,
      logger,
    });
    this.#stops.push(this.#directory.on((e) => this.#onDirectory(e)));
    this.#stops.push(this.#directory.on((e) => this.#agentChanged(e.name)));
    this.#stops.push(this.#registry.on((e) => this.#onRegistry(e)));
    await this.#directory.start();
    await this.#registry.start();
    // What every WELCOME carries from now on: agents are told only of changes to it.
    this.#announced = shapeOf(this.welcomeServers() ?? []);
    if (this.#o.shared !== undefined) {
      const shared = new SharedState({
        bus,
        clusterName,
        serverName,
        serverId: this.id,
        logger,
        host: this.#o.shared,
        isLive: (id) => this.#live.has(id),
      });
      await shared.start();
      this.#shared = shared;
    }
    this.#stops.push(this.#o.fleet.presence.on((e) => this.#onPresence(e)));
    const probe = setInterval(() => this.#probe(), PROBE_EVERY_MS);
    probe.unref();
    this.#stops.push(() => clearInterval(probe));
    // Agents that joined before the cluster was up (none on a fresh start; kept for safety).
    for (const a of this.#o.local.agents()) if (a.state !== "offline") void this.#claim(a);
    logger.info({ cluster: clusterName, id: this.id }, "joined the cluster");
  }

  /** Marks this server draining in the registry (others stop sending it new agents). */
  draining(): void {
    void this.#registry?.markDraining().catch((err: unknown) => {
      this.#o.logger.warn(
        { err: (err as Error).message },
        "could not mark this server draining in the registry",
      );
    });
  }

  /** Hands the sessions over to the other servers, when there is one to take them. */
  handOver(idleTimeoutMs: number): Promise<HandoffResult> | undefined {
    const others = (this.#registry?.list() ?? []).filter((r) => r.state === "ready");
    if (others.length === 0 || this.#busStatus !== "connected") return undefined;
    return this.handoff.handOver(idleTimeoutMs, this.#o.handoffTimeoutMs ?? 10_000, () =>
      (this.#registry?.list() ?? []).some((r) => r.state === "ready"),
    );
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#resyncTimer);
    clearTimeout(this.#announceTimer);
    for (const s of this.#stops.splice(0)) s();
    this.#lag.disable();
    this.#inbox?.unsubscribe();
    this.remote.busDown("this server is leaving the cluster");
    this.streams.busDown("this server is leaving the cluster");
    await this.#shared?.stop();
    await this.#registry?.stop().catch(() => undefined);
    this.#directory?.stop();
    await this.#o.bus.close().catch(() => undefined);
  }

  // --- the view other parts read -------------------------------------------------------------

  readonly #agentWatchers = new Set<(name: string) => void>();

  onAgentChange(fn: (name: string) => void): () => void {
    this.#agentWatchers.add(fn);
    return () => this.#agentWatchers.delete(fn);
  }

  #agentChanged(name: string): void {
    for (const fn of this.#agentWatchers) fn(name);
  }

  remoteAgents(): AgentInfo[] {
    const d = this.#directory;
    const r = this.#registry;
    if (d === undefined || r === undefined) return [];
    const out: AgentInfo[] = [];
    for (const row of d.list()) {
      if (row.record.serverId === this.id) continue;
      out.push(toAgentInfo(row.name, row.record, row.state, this.#live.has(row.record.serverId)));
    }
    return out;
  }

  ownerOf(name: string): Owner | undefined {
    const rec = this.#directory?.ownerOf(name)?.record;
    if (rec === undefined || rec.serverId === this.id) return undefined;
    if (this.#busStatus !== "connected" || !this.#live.has(rec.serverId)) return undefined;
    return { serverId: rec.serverId, server: rec.server };
  }

  whyUnreachable(name: string): string | undefined {
    const rec = this.#directory?.ownerOf(name)?.record;
    if (rec === undefined || rec.serverId === this.id) return undefined;
    if (this.#busStatus !== "connected")
      return `it is on server ${rec.server}, and this server has lost the cluster backplane (NATS)`;
    if (!this.#live.has(rec.serverId))
      return `it was on server ${rec.server}, which is gone from the cluster`;
    return undefined;
  }

  relaysStreams(owner: Owner): boolean {
    const row = this.#registry?.get(owner.server);
    return row?.id === owner.serverId && row.capabilities.includes("streams");
  }

  servers(): ServerInfo[] {
    return (this.#registry?.list() ?? []).map((row) => ({
      name: row.name,
      urls: row.urls,
      state: row.state,
      agents: row.agents,
      lagMs: row.lagMs,
      version: row.version,
      lastHeartbeatMs: Math.round(row.lastHeartbeatMs),
    }));
  }

  /** The live servers for a WELCOME: each with its URLs, load and whether it drains. */
  welcomeServers(): WelcomeServers | undefined {
    const rows = this.#registry?.list();
    if (rows === undefined) return undefined;
    return rows
      .filter((r) => r.state === "self" || r.state === "ready" || r.state === "draining")
      .map((r) => ({
        name: r.name,
        urls: r.urls,
        load: r.agents,
        state: r.announced,
      }));
  }

  // --- events ----------------------------------------------------------------------------------

  #onMessage(m: BusMessage): void {
    let env: ReturnType<typeof decodeEnvelope>;
    try {
      env = decodeEnvelope(m.data);
    } catch (err) {
      this.#o.logger.warn({ subject: m.subject, err: (err as Error).message }, "cluster message refused");
      return;
    }
    if (isStreamMessage(env.head.t)) {
      this.streams.onMessage(env);
      return;
    }
    switch (env.head.t) {
      case "part":
        this.runner.onPart(env);
        break;
      case "cancel":
        this.runner.onCancel(env);
        break;
      case "outcomes":
        this.remote.onOutcomes(env);
        break;
      case "handoff":
        this.handoff.onRequest(m);
        break;
      case "ping":
        m.respond(encodeEnvelope({ t: "pong" }));
        break;
      default:
        this.#o.logger.debug(
          { type: env.head.t, v: env.head.v },
          "cluster message of an unknown type: ignored",
        );
    }
  }

  /**
   * Servers whose parts wait for more than a probe interval, or that serve streams read here,
   * are asked a ping: a server that crashed has no subscription left, and NATS says "no
   * responders" at once — its agents' outcomes and streams settle now rather than after the
   * registry's 5 missed refreshes.
   */
  #probe(): void {
    if (this.#busStatus !== "connected") return;
    const owners = new Map<string, Owner>();
    for (const o of this.remote.ownersWaitingSince(performance.now(), PROBE_EVERY_MS))
      owners.set(o.serverId, o);
    for (const o of this.streams.readers.owners()) owners.set(o.serverId, o);
    for (const owner of owners.values()) {
      this.#o.bus
        .request(this.subjects.node(owner.serverId, "ping"), encodeEnvelope({ t: "ping" }), {
          timeoutMs: PROBE_EVERY_MS,
        })
        .catch((err: unknown) => {
          const e = MusterError.from(err);
          // No responders: gone. A timeout may be load: the registry judges that.
          if (e.code !== ErrorCode.UNAVAILABLE || this.#busStatus !== "connected") return;
          this.#o.logger.warn(
            { server: owner.server, why: e.rawMessage },
            "server does not answer: its calls settle now",
          );
          this.remote.serverDown(owner.serverId, "is gone (no subscriber on the backplane)");
          this.streams.serverDown(owner.serverId, "is gone (no subscriber on the backplane)");
        });
    }
  }

  #onBusStatus(s: BusStatus): void {
    const was = this.#busStatus;
    this.#busStatus = s;
    if (s === was) return;
    if (s === "connected") {
      this.#o.logger.info("cluster backplane reachable again");
      this.#resyncDelayMs = 0;
      this.#scheduleResync(0);
      return;
    }
    this.#o.logger.warn({ status: s }, "cluster backplane unreachable: serving this server's agents only");
    this.remote.busDown(`the backplane is ${s}`);
    this.streams.busDown(`the backplane is ${s}`);
  }

  /**
   * After a change of the registry: when the cluster's servers (names, URLs, states) differ
   * from what the agents were last told, tells them (`muster.servers`), at most once a second,
   * so that an agent connected for long still knows where to go if this server fails.
   */
  #serversChanged(): void {
    if (this.#announceTimer !== undefined || this.#stopped) return;
    this.#announceTimer = setTimeout(() => {
      this.#announceTimer = undefined;
      if (this.#stopped) return;
      const servers = checkedList(() => this.welcomeServers(), this.#o.logger).servers;
      if (servers === undefined) return;
      const shape = shapeOf(servers);
      if (shape === this.#announced) return;
      this.#announced = shape;
      this.#o.fleet.tellAgents("muster.servers", { servers }, "the cluster's servers");
    }, ANNOUNCE_DEBOUNCE_MS);
    this.#announceTimer.unref();
  }

  #onRegistry(e: RegistryEvent): void {
    if (e.type !== "conflict") {
      this.#serversChanged();
      // A server's coming or going changes how its agents are listed.
      if (this.#agentWatchers.size > 0) for (const a of this.remoteAgents()) this.#agentChanged(a.name);
    }
    if (e.type === "up") {
      this.#live.add(e.server.id);
      this.#directory?.restoreServer(e.server.id);
      return;
    }
    if (e.type !== "down") return;
    const { id, name } = e.server;
    this.#live.delete(id);
    const why =
      e.reason === "dead"
        ? "is gone (no heartbeat)"
        : e.reason === "restarted"
          ? "restarted"
          : "left the cluster";
    this.#o.logger.warn(
      { server: name, id, reason: e.reason },
      "server gone from the cluster: its calls settle now",
    );
    this.remote.serverDown(id, why);
    this.runner.originDown(id);
    this.streams.serverDown(id, why);
    this.#directory?.dropServer(id);
    this.#shared?.serverDown(id);
  }

  #onDirectory(e: DirectoryEvent): void {
    if (e.type !== "claimed" || e.record.serverId === this.id) return;
    const peer = this.#o.fleet.live(e.name);
    if (peer === undefined) return;
    // Only a newer session replaces ours (ours may be on its way to the directory).
    if (!isNewer(e.record, { epoch: peer.connectedSince, session: peer.id })) return;
    this.#o.logger.warn(
      { name: e.name, server: e.record.server },
      "the agent connected to another server: its session here is replaced",
    );
    this.#o.fleet.end(
      peer,
      ErrorCode.REPLACED,
      `replaced by a newer session on server ${e.record.server}`,
      CloseCode.REPLACED,
    );
  }

  #onPresence(e: PresenceEvent): void {
    const d = this.#directory;
    if (d === undefined) return;
    const a = e.agent;
    const fail = (err: unknown) =>
      this.#o.logger.warn({ peer: a.name, err: (err as Error).message }, "cluster presence not updated");
    switch (e.type) {
      case "join":
      case "replace":
      case "resume": // perhaps a session taken over from another server: ours now
        void this.#claim(a);
        break;
      case "leave":
        d.release(a.name, a.sessionId, e.reason).catch(fail);
        break;
      default:
        d.setState(a.name, a.sessionId, directoryState(a)).catch(fail);
    }
  }

  async #claim(a: AgentInfo): Promise<void> {
    try {
      await this.#claimOrThrow(a);
    } catch (err) {
      this.#o.logger.warn({ peer: a.name, err: (err as Error).message }, "cluster presence not claimed");
    }
  }

  /** Claims `a` in the directory, ending its session here if a newer one elsewhere won. */
  async #claimOrThrow(a: AgentInfo): Promise<void> {
    const d = this.#directory;
    if (d === undefined) return;
    const result = await d.claim(a.name, {
      session: a.sessionId,
      epoch: a.connectedSince,
      labels: a.labels,
      version: a.version,
      state: directoryState(a),
    });
    if (result.won) return;
    const peer = this.#o.fleet.live(a.name);
    if (peer === undefined || peer.id !== a.sessionId) return;
    this.#o.fleet.end(
      peer,
      ErrorCode.REPLACED,
      `replaced by a newer session on server ${result.by.server}`,
      CloseCode.REPLACED,
    );
  }

  #scheduleResync(delayMs: number): void {
    clearTimeout(this.#resyncTimer);
    this.#resyncTimer = setTimeout(() => void this.#resync(), delayMs);
    this.#resyncTimer.unref();
  }

  /**
   * After the backplane came back: writes what changed here while it was unreachable (presence
   * updates are not buffered). Agents that connected are claimed, those that left released, and
   * records naming a session of this server that is gone are released; records that already
   * say the truth are not written. A pass stops at its first failure and is tried again with
   * backoff (a restarted nats-server may take a while before its key-value store answers),
   * until one succeeds or the link is lost again.
   */
  async #resync(): Promise<void> {
    const d = this.#directory;
    if (d === undefined || this.#stopped || this.#busStatus !== "connected") return;
    try {
      const rows = new Map(d.list().map((r) => [r.name, r]));
      for (const a of this.#o.local.agents()) {
        if (a.state === "pending") continue;
        const rec = rows.get(a.name)?.record;
        const ours = rec !== undefined && rec.serverId === this.id && rec.session === a.sessionId;
        if (a.state === "offline") {
          if (ours && rec.state !== "offline")
            await d.release(a.name, a.sessionId, a.disconnectReason ?? "left");
        } else if (!ours || rec.state !== directoryState(a)) await this.#claimOrThrow(a);
      }
      for (const row of rows.values()) {
        if (row.record.serverId !== this.id || row.record.state === "offline") continue;
        if (this.#o.fleet.live(row.name)?.id === row.record.session) continue;
        await d.release(row.name, row.record.session, "left while the cluster backplane was unreachable");
      }
    } catch (err) {
      if (this.#stopped || this.#busStatus !== "connected") return;
      this.#resyncDelayMs = Math.min(5000, Math.max(250, this.#resyncDelayMs * 2));
      this.#o.logger.debug(
        { err: (err as Error).message, retryInMs: this.#resyncDelayMs },
        "cluster presence not written yet",
      );
      this.#scheduleResync(this.#resyncDelayMs);
      return;
    }
    this.#o.logger.info("cluster presence up to date again after the backplane came back");
  }
}

/** The directory's state of a local agent (pending enrolments are never claimed). */
function directoryState(a: AgentInfo): DirectoryState {
  return a.state === "pending" ? "offline" : a.state;
}

/**
 * Checks the `advertise` URLs of a server as dialers will read them (docs/protocol.md §6.2):
 * 1–8 URLs of a scheme muster dials (TRANSPORT_SCHEMES) with a host, no credentials, each at most 512 characters.
 * Throws a RangeError naming the first wrong one.
 */
export function checkAdvertised(urls: readonly string[]): void {
  const L = WELCOME_SERVERS_LIMITS;
  if (urls.length === 0 || urls.length > L.urlsMax)
    throw new RangeError(`advertise: give 1–${L.urlsMax} URLs, not ${urls.length}`);
  for (const url of urls) {
    let u: URL | undefined;
    try {
      u = new URL(url);
    } catch {
      u = undefined;
    }
    const what = `advertise: ${JSON.stringify(url.slice(0, 80))}`;
    if (url.length > L.urlMaxChars)
      throw new RangeError(`${what} is longer than ${L.urlMaxChars} characters`);
    if (u === undefined || !NETWORK_PROTOCOLS.has(u.protocol) || u.hostname === "")
      throw new RangeError(
        `${what} is not a URL agents can dial: give ws://, wss://, tcp:// or tls:// with a host`,
      );
    if (u.username !== "" || u.password !== "") throw new RangeError(`${what} must not hold credentials`);
  }
}

/** The servers of a list as agents use them (not their loads, which change all the time). */
function shapeOf(servers: WelcomeServers): string {
  return JSON.stringify(servers.map((x) => [x.name, x.urls, x.state ?? "ready"]));
}

/** A listener URL as others dial it: the advertised host, or the host name for a wildcard. */
export function advertisedUrl(url: string, host?: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return url;
  }
  if (u.protocol === "memory:") return url;
  const wildcard = u.hostname === "0.0.0.0" || u.hostname === "[::]" || u.hostname === "::";
  if (host === undefined && !wildcard) return url;
  u.hostname = host ?? hostname();
  return u.toString().replace(/\/$/, "");
}

function toAgentInfo(
  name: string,
  rec: AgentRecord,
  rowState: DirectoryState,
  serverAlive: boolean,
): AgentInfo {
  const state = serverAlive ? rowState : "offline";
  return {
    name,
    labels: rec.labels,
    version: rec.version,
    state,
    address: "",
    transport: "",
    sessionId: rec.session,
    connectedSince: rec.epoch,
    lastSeen: rec.since,
    ...(state === "offline"
      ? { disconnectReason: serverAlive ? rec.reason : `server ${rec.server} is gone` }
      : {}),
    pendingCalls: 0,
    rttMs: -1,
    server: rec.server,
  };
}
