/**
 * Every default of the numbers service and its client, in one place. Options elsewhere
 * document these values with `@default` and read them from here.
 */
export const NUMBERS_DEFAULTS = {
  /** The port of the seed's server and client. */
  port: 1337,
  /** Loopback only: the seed's client dials `localhost` and nothing else. */
  host: "localhost",
  /** The seed's pace: one message per second. */
  tickMs: 1000,
  /** A session is forgotten this long after its last activity. */
  expiryMs: 30_000,
  /** Client: first retry delay, doubled on each failed attempt, reset by every message. */
  retryInitialMs: 500,
  /** Client: retry delays stop growing here. */
  retryMaxMs: 8000,
  /** Client: each retry delay is spread by up to ±this fraction, so clients do not retry in step. */
  retryJitter: 0.2,
  /** Client: it gives up when nothing arrived for this long. */
  giveUpMs: 60_000,
  /** Client `stateful` mode: n is drawn from 1..this when not given (the seed's client). */
  statefulMaxRandomN: 0xfff,
} as const;

/** The session and n of the seed client's `stateful-test` and `stateful-test-reconnect`. */
export const TEST_SESSION = { uuid: "a17417a0-aa39-40b5-8675-247713cc4908", n: 5 } as const;
