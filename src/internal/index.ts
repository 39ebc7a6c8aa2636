// @internal – not covered by semver: building blocks for transports, tests and tools.

export { ReplayBuffer } from "../session/replay-buffer.js";
export { Session, type SessionHooks, type SessionOptions, type SessionState } from "../session/session.js";
export { type AddressKeyOptions, addressKey } from "./address-key.js";
export { AsyncQueue } from "./async-queue.js";
export { Backoff, type BackoffOptions } from "./backoff.js";
export { type Clock, ManualClock, systemClock, type TimerHandle } from "./clock.js";
export { DEFAULTS } from "./defaults.js";
export { type Deferred, deferred } from "./deferred.js";
export { type Logger, silentLogger } from "./logger.js";
