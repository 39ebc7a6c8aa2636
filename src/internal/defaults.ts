/**
 * Every default of muster, in one place. Options elsewhere document these values with
 * `@default` and read them from here.
 */
export const DEFAULTS = {
  /** WebSocket + HTTP port of the server. */
  wsPort: 33075,
  /** Raw TCP port of the server. */
  tcpPort: 33076,
  /** Port of grpc:// and grpcs:// listeners when a URL names none. */
  grpcPort: 33077,
  /** Largest frame accepted, checked from the header before any allocation. */
  maxFrameBytes: 1024 * 1024,
  /**
   * Deepest nesting of arrays and objects accepted in a JSON body or payload (`[[1]]` is 2
   * deep). Deeper values are refused when decoded, so that no code recursing over a decoded
   * value (JSON.stringify included) can overflow the stack.
   */
  maxJsonDepth: 1000,
  /**
   * Largest HELLO body accepted, in bytes. Every valid HELLO fits (about 104 KB at most, with
   * every character of every label escaped); a larger one is refused before it is parsed.
   */
  maxHelloBytes: 128 * 1024,
  /** Replay window: at most this many unacknowledged frames are kept per direction. */
  replayMaxFrames: 4096,
  /** Replay window: at most this many bytes of unacknowledged frames are kept per direction. */
  replayMaxBytes: 16 * 1024 * 1024,
  /** Frames queued beyond a full replay window before sends fail with RESOURCE_EXHAUSTED. */
  backlogMaxBytes: 16 * 1024 * 1024,
  /** How long a dropped session can be resumed. */
  resumeWindowMs: 30_000,
  /** An ACK is sent after this many frames received without one going out. */
  ackEveryFrames: 32,
  /** Otherwise an ACK goes out at most this long after a frame arrived. */
  ackDelayMs: 1000,
  /** A PING is sent when nothing was sent for this long. */
  heartbeatIntervalMs: 5_000,
  /** The peer is `suspect` when nothing arrived for this long. */
  suspectAfterMs: 12_000,
  /** The link is closed (and resume attempted) when nothing arrived for this long. */
  deadAfterMs: 30_000,
  /** A connection must complete its HELLO within this time. */
  handshakeTimeoutMs: 10_000,
  /** Default deadline of a call. */
  callTimeoutMs: 10_000,
  /** First reconnect delay of an agent. */
  reconnectInitialMs: 500,
  /** Largest reconnect delay before jitter. */
  reconnectMaxMs: 30_000,
  /** Reconnect delay growth per attempt. */
  reconnectFactor: 2,
  /** Jitter, applied after the cap: a delay d becomes d × (1 ± jitter × random). */
  reconnectJitter: 0.5,
  /** A connection that lasted this long resets the backoff. */
  reconnectStableMs: 10_000,
  /** A dial attempt that has not completed its handshake by then is abandoned. */
  connectTimeoutMs: 10_000,
  /** Agents that left stay listed (state `offline`) and count in fan-outs for this long. */
  offlineRetentionMs: 5 * 60_000,
  /** Write buffer above which a transport reports back-pressure. */
  highWaterMarkBytes: 1024 * 1024,
  /**
   * Frames sent in one tick leave together in one write, but a batch is written as soon as it
   * holds this many frames (or bytes), so the peer starts on it while the rest is produced.
   */
  writeBatchMaxFrames: 16,
  writeBatchMaxBytes: 64 * 1024,
  /** Connections a server holds at once (handshaking or attached); more are refused. */
  maxConnections: 65_536,
  /** Connections a server holds at once from one IP address. */
  maxConnectionsPerIp: 4096,
  /**
   * New connections a server admits per second on average (with `handshakeBurst` above it);
   * the excess is refused with a retry hint, spread so that they come back at this rate.
   */
  handshakesPerSecond: 2000,
  handshakeBurst: 1000,
  /** Longest retry hint a server hands out. */
  maxRetryAfterMs: 10_000,
  /**
   * A link whose unsent bytes stay above this for `slowConsumerMs` (or exceed four times it at
   * any moment) belongs to a peer that does not read: it is dropped with `slow_consumer`.
   */
  slowConsumerBytes: 8 * 1024 * 1024,
  slowConsumerMs: 10_000,
  /** Lifetime of tokens made by `muster token create` for agents and enrolment. */
  agentTokenTtlMs: 30 * 86_400_000,
  /** Lifetime of tokens made by `muster token create` for operators and admins. */
  operatorTokenTtlMs: 12 * 3_600_000,
  /** Lifetime of the admin token a CLI command mints from a local signing key. */
  localAdminTokenTtlMs: 10 * 60_000,
  /** Clock difference tolerated when a token's `exp` and `nbf` are checked. */
  tokenClockToleranceMs: 30_000,
  /** Successful token verifications a server remembers (by the token's SHA-256). */
  tokenCacheMaxEntries: 10_000,
  /** How often a revocations file is checked for changes. */
  revocationsPollMs: 1000,
  /**
   * Failed authentications allowed per IP address: a bucket of `authFailureBurst` failures,
   * refilled at `authFailuresPerMinute`; at most `authFailureMaxAddresses` addresses are tracked.
   */
  authFailuresPerMinute: 10,
  authFailureBurst: 20,
  authFailureMaxAddresses: 10_000,
  /** Enrolment: requests waiting for an operator at once; more are refused with CLOSE busy. */
  enrolmentMaxPending: 1024,
  /** Enrolment: a request not retried, or a decision not collected, is forgotten after this. */
  enrolmentRetentionMs: 10 * 60_000,
  /** Enrolment: how long a pending agent is told to wait before it asks again. */
  enrolmentRetryAfterMs: 3_000,
  /** Lifetime of the token a server issues to an agent it enrolled. */
  enrolledTokenTtlMs: 365 * 24 * 3_600_000,
  // --- Hostile peers: authentication and enrolment ------------------------------------------
  /**
   * Enrolment: requests waiting at once that were made with one enrolment token, and from one
   * address (an IPv6 /64); more are refused with CLOSE busy, so that one stolen token or one
   * host cannot fill the book (`enrolmentMaxPending`) and lock other agents out.
   */
  enrolmentMaxPendingPerToken: 128,
  enrolmentMaxPendingPerAddress: 32,
  // --- end of: hostile peers: authentication and enrolment ---------------------------------
  /** Graceful shutdown: calls and streams in flight get this long to finish. */
  drainTimeoutMs: 10_000,
  /** Graceful shutdown: the retry hint given to connections refused while draining. */
  drainRetryAfterMs: 1_000,

  // --- Text endpoints: what a peer of a text endpoint may make the process hold or log ---
  /** Stream connections a text endpoint holds at once; more are told so and closed. */
  textMaxConnections: 256,
  /**
   * A text connection that has read and written nothing for this long, while none of its lines
   * is being handled, is closed.
   */
  textIdleTimeoutMs: 60_000,
  /** Bytes of lines one text connection may hold (waiting or being handled) before it is no longer read. */
  textConnectionQueueBytes: 1024 * 1024,
  /** Lines one text connection may hold before it is no longer read. */
  textConnectionQueueLines: 64,
  /**
   * Bytes all connections of one text endpoint may hold, partial lines included; above it, a
   * connection holding anything is no longer read until the total is back under three quarters.
   */
  textEndpointQueueBytes: 16 * 1024 * 1024,
  /** Unsent reply bytes above which a text connection waits for its peer to read before its next line. */
  textReplyHighWaterBytes: 64 * 1024,
  /** Unsent reply bytes a text connection may hold before it is dropped as a slow consumer. */
  textMaxBufferedBytes: 8 * 1024 * 1024,
  /**
   * Warnings and errors logged about one text peer (one address): a burst, then this many a
   * second; the rest are counted, and the count logged with the next line allowed (or after
   * `textLogSummaryMs`).
   */
  textLogBurst: 10,
  textLogPerSecond: 1,
  /** The same for all peers of one endpoint or service together. */
  textLogTotalBurst: 100,
  textLogTotalPerSecond: 20,
  /** How long after the first line left out its count is logged, if no line came to carry it. */
  textLogSummaryMs: 10_000,
  /** Text commands a peer on this machine may send a server without a credential. */
  textOpenCommands: ["ALIVE", "HELP"],

  // --- Hostile peers: calls, targets, streams, relays and refusal logs ------------------------
  /**
   * Longest target expression accepted (names, glob or selector), in UTF-8 bytes. Longer ones
   * are refused with INVALID_ARGUMENT before they are parsed.
   */
  maxTargetBytes: 16 * 1024,
  /**
   * Largest window a peer can make the server hold for one stream it reads: the window of a
   * stream relayed by `muster.stream` (the operator's `windowBytes`) is capped to it.
   */
  maxStreamWindowBytes: 1024 * 1024,
  /**
   * Streams of one peer that broke flow control (items beyond window + credit) before its link
   * is closed with `protocol_error`; each one is closed at once.
   */
  streamViolationsBeforeClose: 3,
  /** Relayed calls (`muster.call`) one operator may have in flight on one agent. */
  maxRelayedCallsPerAgent: 100,
  /** `muster.agents`: agents in a page when the request says nothing, and at most. */
  agentsPageSize: 100,
  agentsPageMaxSize: 1000,
  /**
   * Refusals (and other warnings a peer causes) logged per peer per interval; the rest are
   * counted and summed up in one line when the next interval starts or the peer leaves.
   */
  refusalLogBurst: 10,
  refusalLogIntervalMs: 60_000,

  // --- Hostile peers on the network: HTTP, WebSocket upgrades, per-address limits ---------
  /**
   * Per-address limits count an IPv6 client per network of this many leading bits (a /64 is
   * one subscriber, who may use any address in it); IPv4 addresses count one by one.
   */
  ipv6PrefixBits: 64,
  /**
   * An HTTP connection (admin API, or a WebSocket upgrade) must have sent its request's
   * headers within this time, or it is answered 408 and closed; on wss:// the TLS handshake
   * gets as long again.
   */
  httpHeadersTimeoutMs: 5_000,
  /** An HTTP request must have arrived whole (headers and body) within this time. */
  httpRequestTimeoutMs: 30_000,
} as const;
