import type { Server as HttpServer, IncomingMessage, ServerResponse } from "node:http";
import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import type { Clock } from "../internal/clock.js";
import { DEFAULTS } from "../internal/defaults.js";
import { formatHostPort, splitHostPort } from "../internal/host-port.js";
import { optionLimit } from "../internal/limits.js";
import type { Logger } from "../internal/logger.js";
import type { SessionLimits } from "../session/session.js";
import { listenTextAll, type TextListener } from "../text/endpoint.js";
import type { TextService } from "../text/service.js";
import { createHttpListener, type HttpLimits } from "../transport/http-server.js";
import { listenAll } from "../transport/listen.js";
import type { TrafficStats } from "../transport/traffic.js";
import type { Listener, Transport } from "../transport/types.js";
import type { DecodeLimits } from "../wire/codec.js";
import { CloseCode, HEADER_BYTES } from "../wire/frame.js";
import type { Readiness } from "./admin-host.js";
import type { AuthGate } from "./auth-gate.js";
import type { Fleet } from "./fleet.js";
import type { Handshake } from "./handshake.js";
import { upgradeOriginCheck } from "./http-guard.js";
import type { ServerMetrics } from "./metrics.js";
import type { ServerOptions } from "./options.js";
import { serverTextEndpoints } from "./text-access.js";

/** How a drain ended. */
export interface DrainResult {
  /** Calls and streams still running when the drain timeout passed (0: all finished). */
  abandoned: number;
  /** How long the drain took, in ms. */
  tookMs: number;
  /**
   * In a cluster with another server ready: the agent sessions handed over to the other servers
   * (`moved`) and those not taken over within the handoff timeout (`left`, ended here).
   */
  handoff?: HandoffResult;
}

/** What a draining server's handover of its agent sessions came to. */
export interface HandoffResult {
  moved: number;
  left: number;
}

/** The parts of a server that its lifecycle starts and stops. */
export interface LifecycleParts {
  readonly options: ServerOptions;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly maxFrameBytes: number;
  readonly decodeLimits: Readonly<Required<DecodeLimits>>;
  readonly standalone: boolean;
  /** Read live: the sweep runs four times per heartbeat interval. */
  readonly sessionLimits: SessionLimits;
  readonly http: Required<HttpLimits>;
  readonly allowedOrigins: ReadonlySet<string>;
  readonly traffic: TrafficStats;
  readonly text: TextService;
  readonly gate: AuthGate;
  readonly fleet: Fleet;
  readonly handshake: Handshake;
  readonly metrics: ServerMetrics;
  adminHandler(): (req: IncomingMessage, res: ServerResponse) => void;
  accept(transport: Transport): void;
  /** Parts that live as long as the server: started after the listeners, stopped at close. */
  readonly attachments: readonly Attachment[];
}

/** Something that starts with the server and stops with it (e.g. its cluster membership). */
export interface Attachment {
  /** After every listener is bound; a rejection fails `start` (the listeners are closed again). */
  start(listeners: readonly Listener[]): Promise<void>;
  /** The server begins to drain. */
  draining(): void;
  /**
   * At the start of a drain: hands the agent sessions over to other servers, each as soon as it
   * is idle, within `idleTimeoutMs` (a cluster with another server ready); undefined when this
   * attachment cannot (the drain then waits for calls in flight, and the sessions end here).
   * While it runs, agents' calls are still served: their sessions are here until they move.
   */
  handOver?(idleTimeoutMs: number): Promise<HandoffResult> | undefined;
  /** At close, before the sessions end (a cluster leaves first: other servers drop its agents). */
  stop(): Promise<void>;
  /** `degraded`: the server serves, with less than all it should (`/readyz` says so). */
  readonly health: "ok" | "degraded";
}

/**
 * A server's life: `starting` (binding listeners), `ready`, then `draining` and closed. It owns
 * the listeners, the admin listener, the text endpoints and the maintenance sweep.
 */
export class Lifecycle {
  #readiness: Readiness = "starting";
  #listeners: Listener[] = [];
  #textListeners: TextListener[] = [];
  #admin: HttpServer | undefined;
  #adminUrl: string | undefined;
  #sweep: ReturnType<Clock["setTimeout"]> | undefined;
  #closed = false;
  #draining: Promise<DrainResult> | undefined;
  #handingOver = false;
  readonly #closedDone: { promise: Promise<void>; resolve(): void };

  constructor(readonly parts: LifecycleParts) {
    let resolveClosed!: () => void;
    const closedPromise = new Promise<void>((r) => {
      resolveClosed = r;
    });
    this.#closedDone = { promise: closedPromise, resolve: resolveClosed };
  }

  get readiness(): Readiness {
    if (this.#readiness === "ready" && this.parts.attachments.some((a) => a.health === "degraded"))
      return "degraded";
    return this.#readiness;
  }
  get listeners(): readonly Listener[] {
    return this.#listeners;
  }
  get textListeners(): readonly TextListener[] {
    return this.#textListeners;
  }
  get adminUrl(): string | undefined {
    return this.#adminUrl;
  }
  get isClosed(): boolean {
    return this.#closed;
  }
  get isDraining(): boolean {
    return this.#draining !== undefined;
  }

  /** Draining by handing the agent sessions over to other servers (their calls still served). */
  get isHandingOver(): boolean {
    return this.#handingOver;
  }
  get closed(): Promise<void> {
    return this.#closedDone.promise;
  }

  async start(): Promise<void> {
    const p = this.parts;
    const o = p.options;
    if (this.#closed) throw new MusterError(ErrorCode.CLOSED, "server is closed");
    // A standalone server has no authentication: by default it listens on loopback only.
    const host = p.standalone ? "127.0.0.1" : "0.0.0.0";
    const urls =
      o.listen ??
      (o.tls
        ? [`wss://${host}:${DEFAULTS.wsPort}`, `tls://${host}:${DEFAULTS.tcpPort}`]
        : [`ws://${host}:${DEFAULTS.wsPort}`, `tcp://${host}:${DEFAULTS.tcpPort}`]);
    this.#listeners = await listenAll(urls, {
      tls: o.tls,
      memory: o.memory,
      maxFrameBytes: p.maxFrameBytes,
      // Nobody may make the server buffer more than a HELLO before saying who they are.
      firstFrameMaxBytes: Math.min(p.maxFrameBytes, HEADER_BYTES + p.decodeLimits.maxHelloBytes),
      accept: (t) => p.accept(t),
      onHttpRequest: p.adminHandler(),
      http: p.http,
      checkUpgrade: upgradeOriginCheck(p.allowedOrigins, p.standalone, p.logger),
      traffic: p.traffic,
    });
    for (const l of this.#listeners) p.logger.info({ url: l.url }, "listening");
    const text = o.text;
    if (text?.listen !== undefined && text.listen.length > 0) {
      try {
        this.#textListeners = await listenTextAll(text.listen, serverTextEndpoints(o, p.text, p.logger));
      } catch (err) {
        await Promise.all(this.#listeners.map((l) => l.close()));
        this.#listeners = [];
        throw err;
      }
    }
    const admin = o.admin?.listen;
    if (admin !== undefined) {
      try {
        this.#adminUrl = await this.#listenAdmin(admin);
      } catch (err) {
        await Promise.all([...this.#listeners, ...this.#textListeners].map((l) => l.close()));
        this.#listeners = [];
        this.#textListeners = [];
        throw err;
      }
    }
    for (const a of p.attachments) {
      try {
        await a.start(this.#listeners);
      } catch (err) {
        await Promise.all([...this.#listeners, ...this.#textListeners].map((l) => l.close()));
        this.#admin?.close();
        this.#listeners = [];
        this.#textListeners = [];
        throw err;
      }
    }
    o.auth?.revocations?.watch((added) => p.fleet.onRevoked(added));
    if (p.standalone) {
      p.logger.warn(
        "STANDALONE MODE: no authentication; only loopback addresses may connect. Do not use it on a shared machine.",
      );
    } else {
      p.logger.info(
        { key: p.gate.keyFingerprint, approve: o.auth?.approve === true },
        "authentication on: every peer presents a token",
      );
    }
    this.#scheduleSweep();
    if (!this.#closed && this.#draining === undefined) this.#readiness = "ready";
  }

  async #listenAdmin(hostPort: string): Promise<string> {
    const hp = splitHostPort(hostPort);
    if (hp === undefined || hp.port > 65535)
      throw new MusterError(
        ErrorCode.INVALID_ARGUMENT,
        `admin address ${JSON.stringify(hostPort)}: expected host:port`,
      );
    const { host, port } = hp;
    const server = createHttpListener(this.parts.adminHandler(), undefined, this.parts.http)
      .server as HttpServer;
    await new Promise<void>((resolve, reject) => {
      server.once("error", (err: NodeJS.ErrnoException) =>
        reject(
          new MusterError(
            ErrorCode.UNAVAILABLE,
            `cannot listen on ${hostPort} (admin): ${err.code ?? err.message}`,
          ),
        ),
      );
      server.listen(port, host, resolve);
    });
    this.#admin = server;
    const bound = (server.address() as { port: number }).port;
    const url = `http://${formatHostPort(host, bound)}`;
    this.parts.logger.info({ url }, "admin API listening");
    return url;
  }

  #scheduleSweep(): void {
    const hb = this.parts.sessionLimits.heartbeatIntervalMs;
    const every = Math.max(10, Math.min(1000, Math.floor(hb / 4)));
    this.#sweep = this.parts.clock.setTimeout(() => {
      this.parts.fleet.tick();
      if (!this.#closed) this.#scheduleSweep();
    }, every);
    this.#sweep.unref();
  }

  drain(options: { timeoutMs?: number }, defaultTimeoutMs: number): Promise<DrainResult> {
    if (this.#draining !== undefined) return this.#draining;
    const timeoutMs = optionLimit(options.timeoutMs, defaultTimeoutMs, "timeoutMs");
    this.#draining = this.#drain(timeoutMs);
    return this.#draining;
  }

  async #drain(timeoutMs: number): Promise<DrainResult> {
    const { fleet, logger } = this.parts;
    const started = performance.now();
    this.#readiness = "draining";
    for (const a of this.parts.attachments) a.draining();
    logger.info(
      { inFlight: fleet.inFlight(), timeoutMs },
      "draining: no new sessions or calls, waiting for calls in flight",
    );
    let handoff: HandoffResult | undefined;
    for (const a of this.parts.attachments) {
      const handing = a.handOver?.(timeoutMs);
      if (handing === undefined) continue;
      this.#handingOver = true;
      handoff = await handing;
      break;
    }
    // What is left: operators' calls, and agents' when nothing took the sessions over.
    let left = fleet.inFlight();
    while (left > 0 && performance.now() - started < timeoutMs && !this.#closed) {
      await new Promise((r) => setTimeout(r, 20));
      left = fleet.inFlight();
    }
    if (left > 0) logger.warn({ abandoned: left, timeoutMs }, "drain timeout: ending calls still in flight");
    const result: DrainResult = {
      abandoned: left,
      tookMs: Math.round(performance.now() - started),
      ...(handoff !== undefined ? { handoff } : {}),
    };
    // Logged before closing: whoever waits for `closed` (the CLI exits then) has seen it.
    logger.info(result, "drained: closing");
    await this.close();
    return result;
  }

  async close(): Promise<void> {
    if (this.#closed) return this.#closedDone.promise;
    const p = this.parts;
    this.#closed = true;
    this.#readiness = "draining";
    this.#admin?.close();
    this.#admin?.closeAllConnections();
    if (this.#sweep) p.clock.clearTimeout(this.#sweep);
    p.options.auth?.revocations?.close();
    await Promise.all([...this.#listeners, ...this.#textListeners].map((l) => l.close()));
    // Left first (deregistered): the sessions ending next are this server's business alone.
    for (const a of p.attachments) await a.stop();
    p.fleet.endAll(
      ErrorCode.CLOSED,
      "server is shutting down: reconnect to another server",
      CloseCode.SHUTDOWN,
    );
    p.handshake.closePending();
    p.fleet.presence.end();
    p.metrics.close();
    p.logger.info("server closed");
    this.#closedDone.resolve();
  }
}
