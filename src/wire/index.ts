export type { DecodeHooks, DecodeLimits } from "./codec.js";
export {
  checkLabels,
  checkName,
  decodeFrame,
  decodeValue,
  encodeCall,
  encodeFrame,
  encodeValue,
  readWelcomeServers,
  withAck,
} from "./codec.js";
export { describeFrame } from "./describe.js";
export type {
  CloseBody,
  Frame,
  FrameOf,
  HelloBody,
  Payload,
  PeerRole,
  WelcomeBody,
  WelcomeServer,
  WelcomeServerState,
  WelcomeServers,
} from "./frame.js";
export {
  CloseCode,
  FrameType,
  HEADER_BYTES,
  isSequenced,
  MAX_SEQ,
  NAME_LIMITS,
  PayloadKind,
  PROTOCOL_VERSION,
  WELCOME_SERVERS_LIMITS,
} from "./frame.js";
export { LENGTH_PREFIX_BYTES, LengthPrefixDecoder, lengthPrefix } from "./length-prefix.js";
export type { CallOrigin } from "./origin.js";
export { ORIGIN_FEATURE, ORIGIN_LIMITS } from "./origin.js";
