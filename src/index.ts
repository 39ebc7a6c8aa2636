// The public API of muster. User-facing symbols first; extension points below.

export {
  type AgentEvent,
  type AgentOptions,
  type AgentState,
  createAgent,
  type MusterAgent,
} from "./agent/create-agent.js";
export { DEFAULT_SERVER_ORDER, type KnownServer, type ServerOrder } from "./agent/server-list.js";
export {
  type AuthKey,
  defaultKeyPath,
  generateKey,
  generateKeyFile,
  type KeyAlgorithm,
  loadKeyFile,
  loadOrCreateKeyFile,
  parseKey,
} from "./auth/keys.js";
export { appendRevocation, RevocationList } from "./auth/revocations.js";
export {
  decodeTokenUnverified,
  type IssueOptions,
  issueToken,
  type TokenClaims,
  type TokenRole,
  verifyToken,
} from "./auth/tokens.js";
export type { BucketOptions, BusMessage, BusStatus, ClusterBus, KvBucket, KvEntry } from "./cluster/bus.js";
export { MemoryBackplane, type MemoryClusterBus } from "./cluster/memory-bus.js";
export { connectNatsBus, type NatsBusOptions } from "./cluster/nats-bus.js";
export { ErrorCode } from "./errors/codes.js";
export { type ErrorBody, MusterError } from "./errors/muster-error.js";
// --- Extension points: transports and the clock ------------------------------------------
export { type Clock, ManualClock, systemClock } from "./internal/clock.js";
export { DEFAULTS } from "./internal/defaults.js";
export type { Logger } from "./internal/logger.js";
export { VERSION } from "./internal/version.js";
export {
  connectOperator,
  type MusterOperator,
  type OperatorOptions,
  type RemoteCall,
} from "./operator/create-operator.js";
export type { AgentInfo, AgentState as PresenceState, PresenceEvent } from "./presence/presence.js";
export type { FanOut, FanOutResult, ServerFanOut } from "./rpc/fan-out.js";
export {
  MusterStream,
  type StreamContext,
  type StreamHandler,
  type StreamOptions,
} from "./rpc/stream.js";
export { formatTarget, parseTarget, type Target } from "./rpc/target.js";
export type {
  CallContext,
  CallOptions,
  CallOutcome,
  Handler,
  OutcomeStatus,
  OutcomeSummary,
  PeerInfo,
} from "./rpc/types.js";
export type { AdminIdentity, Readiness } from "./server/admin-host.js";
export type { Identity, IdentityRole, ServerAuthOptions } from "./server/auth-gate.js";
export {
  createServer,
  type DrainResult,
  type HandoffResult,
  type MusterServer,
} from "./server/create-server.js";
export type { EnrolmentRequest } from "./server/enrolment.js";
export type { FlagInfo, FlagSource, RuntimeFlags } from "./server/flags.js";
export type { ClusterOptions, ServerOptions } from "./server/options.js";
export type { ServerInfo } from "./server/server-info.js";
export { createMemoryPair, MemoryNetwork, type MemoryTransportEnd } from "./transport/memory.js";
export type {
  Listener,
  TlsClientOptions,
  TlsServerOptions,
  Transport,
  TransportCloseInfo,
  TransportHandler,
  TransportOptions,
} from "./transport/types.js";
