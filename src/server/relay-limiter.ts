import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import type { CallCallbacks } from "../rpc/endpoint.js";
import type { Payload } from "../wire/frame.js";

/** Lets the relayed calls of one operator through to an agent, up to a number in flight. */
export interface RelayGate {
  /**
   * Callbacks to start the call on `agent` with (they give its place back when it settles),
   * or RESOURCE_EXHAUSTED when the operator has its limit in flight there already.
   */
  admit(agent: string, cb: CallCallbacks): CallCallbacks | MusterError;
}

/**
 * Relayed calls and streams in flight, per operator and agent, capped at `max`: one operator's
 * slow calls cannot fill an agent's incoming slots (`maxIncomingCalls`) and starve the calls of
 * everyone else. An entry exists only while something is in flight.
 */
export class RelayLimiter {
  readonly #max: number;
  /** `${agent}\0${operator}` → relays in flight (agent names have no NUL). */
  readonly #inFlight = new Map<string, number>();

  constructor(max: number) {
    this.#max = max;
  }

  /** Takes a place for `operator` (a key; `label` in messages) on `agent`; throws when full. */
  acquire(operator: string, label: string, agent: string): string {
    const key = `${agent}\0${operator}`;
    const n = this.#inFlight.get(key) ?? 0;
    if (n >= this.#max) {
      throw new MusterError(
        ErrorCode.RESOURCE_EXHAUSTED,
        `${label} has ${n} relayed calls in flight on agent ${agent} (limit ${this.#max}, maxRelayedCallsPerAgent): wait for some to finish`,
      );
    }
    this.#inFlight.set(key, n + 1);
    return key;
  }

  /** Gives back a place taken by `acquire` (its return value). */
  release(key: string): void {
    const n = (this.#inFlight.get(key) ?? 1) - 1;
    if (n <= 0) this.#inFlight.delete(key);
    else this.#inFlight.set(key, n);
  }

  /** The gate of one relayed fan-out of `operator`. */
  gate(operator: string, label: string): RelayGate {
    return {
      admit: (agent, cb) => {
        try {
          return new Released(this, this.acquire(operator, label, agent), cb);
        } catch (err) {
          return MusterError.from(err);
        }
      },
    };
  }

  /** Relays in flight, over all operators and agents. */
  get size(): number {
    let n = 0;
    for (const v of this.#inFlight.values()) n += v;
    return n;
  }
}

/** A relayed call's callbacks: its place is given back when it settles (exactly once). */
class Released implements CallCallbacks {
  constructor(
    readonly limiter: RelayLimiter,
    readonly key: string,
    readonly inner: CallCallbacks,
  ) {}
  onItem(payload: Payload): void {
    this.inner.onItem?.(payload);
  }
  onSettle(err: MusterError | undefined, payload: Payload | undefined): void {
    this.limiter.release(this.key);
    this.inner.onSettle(err, payload);
  }
}
