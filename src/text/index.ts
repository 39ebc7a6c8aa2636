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
