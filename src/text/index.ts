export type {
  BackoffPause,
  PauseSpec,
  TextClient,
  TextClientOptions,
  TextClientTlsOptions,
} from "./client.js";
export { createTextClient, DEFAULT_PAUSE, PauseSchedule, parsePauseList } from "./client.js";
export type {
  DispatchContext,
  Dispatcher,
  DispatcherOptions,
  DispatchResult,
  Handler,
  MatchOptions,
  ParamDef,
  ParamFlag,
  PredicateOptions,
  Tag,
} from "./dispatcher.js";
export { createDispatcher, Priority } from "./dispatcher.js";
export type { TextEndpointOptions, TextListener } from "./endpoint.js";
export { listenText, listenTextAll, UDP_MAX_BYTES } from "./endpoint.js";
export { localOnlyGuard } from "./guard.js";
export { LineSplitter } from "./lines.js";
export type { PeerLogLimits } from "./log-limiter.js";
export { PeerLogLimiter } from "./log-limiter.js";
export type { MessageInit, NameKind, ParamsInit, ParamValue, ParseOptions } from "./message.js";
export {
  checkMessageName,
  formatMessage,
  MESSAGE_LIMITS,
  Message,
  messageFromJson,
  messageToJson,
  parseMessage,
  SPECIAL_DESTINATIONS,
} from "./message.js";
export type { Address, ParamType, Timespec } from "./param-types.js";
export {
  checkAddress,
  checkInteger,
  checkParamValue,
  checkTimespec,
  formatAddress,
  formatTimespec,
  PARAM_TYPES,
  parseAddress,
  parseInteger,
  parseTimespec,
  timespecFromMs,
  timespecToMs,
} from "./param-types.js";
export type {
  TextContext,
  TextGuard,
  TextGuardVerdict,
  TextHooks,
  TextPeerCertificate,
  TextRouter,
  TextServiceOptions,
  TextTransport,
} from "./service.js";
export { BUILTIN_COMMANDS, TextService, textServiceName } from "./service.js";
export type { TextAddress } from "./url.js";
export { formatTextAddress, parseTextAddress } from "./url.js";
