// The numbers service (gRPC grpc.Comms/GetNumbers) and its client; see docs/numbers.md.

export {
  type NumbersClientMode,
  type NumbersClientOptions,
  type NumbersFailure,
  type NumbersResult,
  runNumbersClient,
} from "./client.js";
export {
  type Parsed,
  parseStatefulCommand,
  parseStatelessCommand,
  parseUuid,
  type StatefulCommand,
  type StatelessCommand,
} from "./commands.js";
export { NUMBERS_DEFAULTS, TEST_SESSION } from "./defaults.js";
export {
  COMMS_DESCRIPTOR,
  type CommsReply,
  type CommsReplyIn,
  type CommsRequest,
  commsService,
} from "./proto.js";
export { type Resolved, type ResumeRequest, type ResumeState, resolveResume } from "./resume.js";
export {
  addToChecksum,
  CHECKSUM_MOD,
  checksumAt,
  firstStatelessValue,
  MAX_N,
  nextStatelessValue,
  sessionSeed,
  valueAt,
} from "./sequence.js";
export {
  type NumbersMode,
  type NumbersServer,
  type NumbersServerOptions,
  startNumbersServer,
} from "./server.js";
