import type { ClusterBus } from "../cluster/bus.js";
import type { Clock } from "../internal/clock.js";
import type { Logger } from "../internal/logger.js";
import type { TextHooks } from "../text/service.js";
import type { MemoryNetwork } from "../transport/memory.js";
import type { TlsServerOptions } from "../transport/types.js";
import type { WelcomeServers } from "../wire/frame.js";
import type { ServerAuthOptions } from "./auth-gate.js";
import type { FlagSource } from "./flags.js";
import type { LiveLimits } from "./live/live-streams.js";

/** Options of `createServer`. Every duration is in milliseconds; defaults in `DEFAULTS`. */
export interface ServerOptions {
  /** Name of this server, sent to peers in WELCOME. @default the host name */
  name?: string;
  /**
   * Where to listen, as URLs: `ws://host:port`, `wss://…`, `tcp://host:port`, `tls://…`,
   * `memory://name` (with `memory`). `wss`/`tls` need `tls`.
   * @default ["ws://0.0.0.0:33075", "tcp://0.0.0.0:33076"] (wss/tls when `tls` is given)
   */
  listen?: string[];
  /**
   * Join a cluster: several servers sharing one fleet over a backplane (a NATS server with
   * JetStream, through `connectNatsBus`). Agents and calls are seen from every server; see
   * docs/cluster.md. Without it the server is alone, as it always was.
   */
  cluster?: ClusterOptions;
  /** Certificate and key for wss:// and tls:// listeners. */
  tls?: TlsServerOptions;
  /** The in-process network for memory:// listeners. */
  memory?: MemoryNetwork;
  logger?: Logger;
  clock?: Clock;
  /** @default 30000 */
  resumeWindowMs?: number;
  /** @default 5000 */
  heartbeatIntervalMs?: number;
  /** @default 12000 */
  suspectAfterMs?: number;
  /** @default 30000 */
  deadAfterMs?: number;
  /** @default 10000 */
  handshakeTimeoutMs?: number;
  /** Default deadline of calls made by the server. @default 10000 */
  callTimeoutMs?: number;
  /** Largest frame accepted, checked from its header before any allocation. @default 1048576 */
  maxFrameBytes?: number;
  /** Deepest nesting of arrays and objects accepted in JSON bodies and payloads. @default 1000 */
  maxJsonDepth?: number;
  /**
   * Largest HELLO accepted, in bytes; over TCP a connection's first frame is refused from its
   * length prefix when larger. @default 131072
   */
  maxHelloBytes?: number;
  /** @default 4096 */
  replayMaxFrames?: number;
  /** @default 16777216 */
  replayMaxBytes?: number;
  /** Calls one peer may have running on the server at once. @default 1000 */
  maxIncomingCalls?: number;
  /** Connections held at once (handshaking or attached); 0 = no limit. @default 65536 */
  maxConnections?: number;
  /** Connections held at once from one IP address; 0 = no limit. @default 4096 */
  maxConnectionsPerIp?: number;
  /**
   * New connections admitted per second on average; the excess is refused with CLOSE `busy`
   * and a retry hint, the hints spread so that refused agents come back at this rate.
   * 0 = no limit. @default 2000
   */
  handshakesPerSecond?: number;
  /** New connections admitted at once above the average rate. @default 1000 */
  handshakeBurst?: number;
  /**
   * Per-address limits (`maxConnectionsPerIp`, failed authentications) count an IPv6 client
   * by its network of this many leading bits, since a client can pick any source address in
   * its /64; 128 counts every address. IPv4 (and IPv4-mapped IPv6) addresses count one by one.
   * @default 64
   */
  ipv6PrefixBits?: number;
  /**
   * Web origins (`https://dash.example.com`) whose pages may open WebSocket connections:
   * an upgrade carrying any other `Origin` (or a browser's `Sec-Fetch-Site`) is answered 403
   * before it is upgraded, so that a web page cannot use a browser's access to the server.
   * Not with `standalone`, which refuses every browser. @default [] (no browser)
   */
  allowedOrigins?: string[];
  /**
   * An HTTP connection on a ws/wss listener (or `admin.listen`) must send its request's
   * headers within this time, or it is answered 408 and closed (slowloris); on wss:// the TLS
   * handshake gets as long again. At most `httpRequestTimeoutMs`. @default 5000
   */
  httpHeadersTimeoutMs?: number;
  /** An HTTP request must arrive whole (headers and body) within this time. @default 30000 */
  httpRequestTimeoutMs?: number;
  /**
   * A link holding more than this many unsent bytes for `slowConsumerMs` (or four times as
   * many at any moment) is dropped with `slow_consumer`; the session stays resumable.
   * @default 8388608
   */
  slowConsumerBytes?: number;
  /** @default 10000 */
  slowConsumerMs?: number;
  /** How long departed agents stay listed as `offline`. @default 300000 */
  offlineRetentionMs?: number;
  /**
   * Longest target expression (names, glob or selector) a call may give, in UTF-8 bytes;
   * longer ones are refused with INVALID_ARGUMENT. @default 16384
   */
  maxTargetBytes?: number;
  /**
   * Largest window the server holds for a stream it reads for a peer: the `windowBytes` an
   * operator asks `muster.stream` for is capped to it. @default 1048576
   */
  maxStreamWindowBytes?: number;
  /**
   * Streams of one peer that may break flow control (items beyond window + credit) before its
   * link is closed with `protocol_error`; each such stream is closed at once. @default 3
   */
  streamViolationsBeforeClose?: number;
  /**
   * Relayed calls (`muster.call`) one operator may have in flight on one agent; more are
   * answered RESOURCE_EXHAUSTED by the server without reaching the agent. @default 100
   */
  maxRelayedCallsPerAgent?: number;
  /**
   * Warnings one peer causes (refused calls, broken rules) written per `refusalLogIntervalMs`;
   * the rest are counted into one summary line. @default 10
   */
  refusalLogBurst?: number;
  /** @default 60000 */
  refusalLogIntervalMs?: number;
  /**
   * Authentication, required unless `standalone`: every HELLO (resumes included) and every
   * admin request presents a token signed with `auth.key`, or a trusted client certificate.
   */
  auth?: ServerAuthOptions;
  /**
   * No authentication at all: only loopback addresses may connect (agents, operators, admin
   * requests), and the server says so loudly in its log and in `/readyz`. Excludes `auth`.
   * @default false
   */
  standalone?: boolean;
  /** Graceful shutdown (`drain()`, `/api/shutdown`): calls and streams in flight get this long. @default 10000 */
  drainTimeoutMs?: number;
  /**
   * Whether the logger's level (and trace) was chosen by whoever started the server, for the
   * runtime flags' source (`option`, else `default`). @default false
   */
  logLevelGiven?: boolean;
  /**
   * Where the initial value of each runtime flag came from, by flag name (`log-level`,
   * `heartbeat-interval`, …), when the caller knows: the CLI says `file` for a value from its
   * config file. A flag left out is `option` when its option is given (`logLevelGiven` for the
   * log level and trace), else `default`.
   */
  flagSources?: Readonly<Partial<Record<string, FlagSource>>>;
  /** The admin HTTP API (see `docs/operations.md`). */
  admin?: ServerAdminOptions;
  /** The web dashboard's live streams (see `docs/dashboard.md`). */
  dashboard?: LiveLimits;
  /** Text endpoints of the server (see `docs/text.md`). */
  text?: ServerTextOptions;
  /**
   * The cluster's live servers, this one included, to announce in every WELCOME (`servers`,
   * docs/protocol.md §6.2) so that dialers learn where else to go. Called once per WELCOME;
   * `undefined` (or no hook): the WELCOME has no `servers`. A list beyond the limits of
   * `WELCOME_SERVERS_LIMITS`, or a hook that throws, costs only the field (with a warning).
   */
  announce?: () => WelcomeServers | undefined;
}

/** The admin HTTP API: always on the ws/wss listeners; also on `listen` when given. */
export interface ServerAdminOptions {
  /** `host:port` of a separate plain-HTTP listener for the admin API (port 0: any free port). */
  listen?: string;
  /** Serve /metrics to any address, not only loopback ones. @default false */
  metricsPublic?: boolean;
}

/**
 * Where the server takes one-line text messages, and how. With authentication (not
 * `standalone`), a message that changes anything carries a credential (`token=`, a client
 * certificate on `tls://`, or the UDP secret): see docs/auth.md, "Text endpoints".
 */
export interface ServerTextOptions {
  /** `tcp://host:port`, `tls://…` (with `tls`), `udp://host:port`, `unix:/path`. */
  listen?: string[];
  /** UDP only: datagrams must carry `secret_code=<this>`; one that does is taken as an admin's. */
  secretCode?: string;
  /** What STOP, QUITTING, RESTART, READY and LOG_ROTATE do on the server itself. */
  hooks?: TextHooks;
  /** Deadline of a message's delivery to an agent. @default callTimeoutMs */
  deliveryTimeoutMs?: number;
  /** Commands of the server's own that a peer on this machine may send without a credential. @default DEFAULTS.textOpenCommands (ALIVE, HELP) */
  openCommands?: readonly string[];
  /** Stream connections held at once per endpoint. @default DEFAULTS.textMaxConnections (256) */
  maxConnections?: number;
  /** A connection idle this long (no line being handled) is closed; 0: never. @default DEFAULTS.textIdleTimeoutMs (60 s) */
  idleTimeoutMs?: number;
  /** Bytes of lines one connection may hold before it is no longer read. @default DEFAULTS.textConnectionQueueBytes (1 MiB) */
  maxQueuedBytes?: number;
  /** Bytes all connections of one endpoint may hold before those holding any are no longer read. @default DEFAULTS.textEndpointQueueBytes (16 MiB) */
  maxEndpointQueuedBytes?: number;
}

/** How a server joins a cluster. */
export interface ClusterOptions {
  /** The backplane, connected (`connectNatsBus(url)`); the server closes it when it closes. */
  bus: ClusterBus;
  /** Servers of one cluster share a name; several clusters may share one NATS. @default "muster" */
  name?: string;
  /** How often the server refreshes its registry record. @default 2000 */
  refreshMs?: number;
  /**
   * The host agents of other servers are sent to (the registry and WELCOME list this server's
   * listener URLs with it). @default each listener's host, or the host name for 0.0.0.0 and ::
   */
  advertiseHost?: string;
  /**
   * The URLs agents of other servers are sent to, whole, instead of the listener URLs: for a
   * server reached through a proxy, a port mapping or a load balancer
   * (`wss://muster-2.example.com:443`). 1–8 URLs of a scheme agents dial (TRANSPORT_SCHEMES), each at most 512
   * characters; not with `advertiseHost`.
   */
  advertise?: readonly string[];
}
