/**
 * Every default of the cluster layer, in one place (as `DEFAULTS` is for the rest of muster).
 * Options elsewhere in `src/cluster` document these values with `@default` and read them here.
 */
export const CLUSTER_DEFAULTS = {
  /** Largest message of the in-memory backplane, in bytes: NATS's default `max_payload`. */
  memoryMaxPayload: 1024 * 1024,
  /** First delay before a watch that lost its feed opens a new one; doubles up to the max. */
  watchRetryInitialMs: 250,
  /** Longest delay between two attempts to re-create a watch (before ±50 % jitter). */
  watchRetryMaxMs: 10_000,
  /** NATS: delay between reconnect attempts to the same server (nats.js adds jitter). */
  natsReconnectTimeWaitMs: 1000,
  /** NATS: a client PING goes out this often; two unanswered ones drop the link. */
  natsPingIntervalMs: 10_000,
  /** NATS: how long a first connection may take. */
  natsConnectTimeoutMs: 5000,
  /** NATS: how long a JetStream (key-value) operation waits for the server. */
  natsJetStreamTimeoutMs: 5000,
  /** Registry: a server rewrites its record this often. */
  registryRefreshMs: 2000,
  /** Registry: a record silent for this many refresh intervals is `suspect`... */
  registrySuspectIntervals: 3,
  /** ...and for this many `dead` (the `down` event). */
  registryDeadIntervals: 5,
  /** Directory: largest encoded record (labels included) written to the agents bucket. */
  directoryMaxRecordBytes: 16 * 1024,
  /** Directory: compare-and-set attempts of one claim or state change before it gives up. */
  directoryMaxCasAttempts: 16,
} as const;
