// Fault injection for tests, soak runs and the `muster chaos-proxy` command.

export {
  type ChaosEvent,
  type ChaosEventKind,
  type ChaosProxy,
  type ChaosProxyOptions,
  type ChaosStats,
  type HostPort,
  startChaosProxy,
} from "./chaos-proxy.js";
export { deriveSeed, exponential, isSeed, MAX_SEED, mulberry32, type Random, randomSeed } from "./prng.js";
export {
  checkSchedule,
  formatAction,
  formatSchedule,
  parseSchedule,
  type ScheduleAction,
  ScheduleError,
  type ScheduleStep,
} from "./schedule.js";
export {
  checkRandomFaults,
  DEFAULT_RANDOM_BLACKHOLE_MS,
  type FaultDecision,
  FaultScheduler,
  type FaultSchedulerOptions,
  type RandomFaultKind,
  type RandomFaults,
  randomDecisions,
} from "./scheduler.js";
export { startTcpProxy, type TcpProxy } from "./tcp-proxy.js";
export { ClockTimer } from "./timer.js";
export { formatDuration, formatRate, MAX_DURATION_MS, parseDurationText, parseRateText } from "./units.js";
