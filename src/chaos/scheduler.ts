/**
 * When faults happen: the steps of a schedule, and random faults drawn from a seeded generator.
 * Pure timing, no sockets: the proxy says what a fault does. Time is read through a `Clock`, so
 * the sequence of decisions can be checked without waiting.
 */
import { type Clock, systemClock } from "../internal/clock.js";
import { deriveSeed, exponential, mulberry32, type Random } from "./prng.js";
import type { ScheduleStep } from "./schedule.js";
import { ClockTimer } from "./timer.js";

/** Random faults: mean intervals of independent Poisson processes, one per kind. */
export interface RandomFaults {
  /** Mean time between cuts (FIN both ways). */
  cutEveryMs?: number;
  /** Mean time between resets (RST both ways). */
  resetEveryMs?: number;
  /** Mean time between black-holes. */
  blackholeEveryMs?: number;
  /** How long each random black-hole lasts (default 5 s); needs `blackholeEveryMs`. */
  blackholeForMs?: number;
  /** What a random fault hits: one open connection picked at random (default), or all of them. */
  target?: "one" | "all";
}

export type RandomFaultKind = "cut" | "reset" | "blackhole";

/** One random fault decision. */
export interface FaultDecision {
  /** Milliseconds after the start. */
  atMs: number;
  kind: RandomFaultKind;
  /** For a black-hole: how long it lasts. */
  forMs?: number;
  /** In [0, 1): which connection is hit, as a fraction of the open ones (`floor(pick × open)`). */
  pick: number;
}

export const DEFAULT_RANDOM_BLACKHOLE_MS = 5000;

/** The stream number of each kind's generator (fixed: changing one breaks replays of old seeds). */
const STREAMS: Record<RandomFaultKind, number> = { cut: 1, reset: 2, blackhole: 3 };
/** The stream of the jitter draws. */
export const JITTER_STREAM = 4;

/**
 * The random fault decisions for a seed, in time order, for ever (nothing when no kind is
 * enabled). Each kind draws from its own stream: interval, then pick, then the next interval…,
 * so the same seed and means give the same sequence, and enabling another kind does not change
 * the decisions of the others. Ties go to cut, then reset, then black-hole.
 */
export function* randomDecisions(seed: number, random: RandomFaults): Generator<FaultDecision> {
  const kinds: { kind: RandomFaultKind; mean: number; rng: Random; next: number }[] = [];
  const add = (kind: RandomFaultKind, mean: number | undefined): void => {
    if (mean === undefined) return;
    const rng = mulberry32(deriveSeed(seed, STREAMS[kind]));
    kinds.push({ kind, mean, rng, next: exponential(rng, mean) });
  };
  add("cut", random.cutEveryMs);
  add("reset", random.resetEveryMs);
  add("blackhole", random.blackholeEveryMs);
  if (kinds.length === 0) return;
  const forMs = random.blackholeForMs ?? DEFAULT_RANDOM_BLACKHOLE_MS;
  for (;;) {
    let k = kinds[0]!;
    for (const c of kinds) if (c.next < k.next) k = c;
    const d: FaultDecision = { atMs: k.next, kind: k.kind, pick: k.rng() };
    if (k.kind === "blackhole") d.forMs = forMs;
    yield d;
    k.next += exponential(k.rng, k.mean);
  }
}

/** Checks random fault options; throws a `RangeError` naming the bad one. */
export function checkRandomFaults(r: RandomFaults): void {
  for (const key of ["cutEveryMs", "resetEveryMs", "blackholeEveryMs", "blackholeForMs"] as const) {
    const v = r[key];
    if (v !== undefined && !(typeof v === "number" && Number.isFinite(v) && v > 0))
      throw new RangeError(`random.${key} must be a number of milliseconds above 0, got ${String(v)}`);
  }
  if (r.blackholeForMs !== undefined && r.blackholeEveryMs === undefined)
    throw new RangeError("random.blackholeForMs needs random.blackholeEveryMs");
  if (r.target !== undefined && r.target !== "one" && r.target !== "all")
    throw new RangeError(`random.target must be "one" or "all", got ${JSON.stringify(r.target)}`);
}

export interface FaultSchedulerOptions {
  clock?: Clock;
  seed: number;
  /** Random faults from `start()`; more can be started later with `startRandom()`. */
  random?: RandomFaults;
  schedule?: readonly ScheduleStep[];
  /** A schedule step falls due. */
  onStep(step: ScheduleStep): void;
  /** A random fault falls due. */
  onRandom(decision: FaultDecision): void;
}

/**
 * Runs a schedule and the random decisions on a clock: schedule steps at their time after
 * `start()`, random decisions at theirs after the random faults started. Times are measured
 * from those origins, so late timers do not shift later faults. Timers are `unref()`ed: a
 * scheduler alone does not keep a process alive.
 */
export class FaultScheduler {
  readonly #clock: Clock;
  readonly #o: FaultSchedulerOptions;
  #t0 = 0;
  #randomT0 = 0;
  #started = false;
  #stepsStopped = false;
  #stepTimer: ClockTimer | undefined;
  #randomTimer: ClockTimer | undefined;
  #decisions: Generator<FaultDecision> | undefined;

  constructor(o: FaultSchedulerOptions) {
    this.#o = o;
    this.#clock = o.clock ?? systemClock;
  }

  /** Milliseconds since `start()`. */
  elapsed(): number {
    return this.#clock.now() - this.#t0;
  }

  /** Starts the schedule, and the random faults of the options. */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#t0 = this.#clock.now();
    this.#armStep(0);
    if (this.#o.random) this.startRandom(this.#o.random);
  }

  /**
   * (Re)starts random faults from now: the decisions for the seed and these options, from the
   * first one, with times counted from this call.
   */
  startRandom(random: RandomFaults): void {
    this.stopRandom();
    this.#randomT0 = this.#clock.now();
    this.#decisions = randomDecisions(this.#o.seed, random);
    this.#armRandom(this.#decisions);
  }

  stopRandom(): void {
    this.#randomTimer?.cancel();
    this.#randomTimer = undefined;
    this.#decisions = undefined;
  }

  /** Stops the schedule (its remaining steps are dropped) and the random faults. */
  stop(): void {
    this.#stepTimer?.cancel();
    this.#stepTimer = undefined;
    this.#stepsStopped = true;
    this.stopRandom();
  }

  #armStep(i: number): void {
    const step = this.#o.schedule?.[i];
    if (!step || this.#stepsStopped) return;
    this.#stepTimer = new ClockTimer(this.#clock, this.#t0 + step.atMs, () => {
      this.#stepTimer = undefined;
      this.#o.onStep(step);
      this.#armStep(i + 1);
    });
  }

  #armRandom(decisions: Generator<FaultDecision>): void {
    const r = decisions.next();
    if (r.done) return;
    const d = r.value;
    this.#randomTimer = new ClockTimer(this.#clock, this.#randomT0 + d.atMs, () => {
      this.#randomTimer = undefined;
      this.#o.onRandom(d);
      // Unless the fault's handler stopped or restarted the random faults.
      if (this.#decisions === decisions) this.#armRandom(decisions);
    });
  }
}
