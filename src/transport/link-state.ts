import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import type { TransportCloseInfo, TransportHandler } from "./types.js";

/** How long a graceful close may take before the connection is destroyed. */
export const CLOSE_GRACE_MS = 2000;

/** The transport that owns a LinkState: how to tear its connection down at once. */
export interface LinkOwner {
  /** @internal Destroys the underlying connection (no graceful close). */
  _kill(): void;
}

const killLink = (owner: LinkOwner): void => owner._kill();

/**
 * The lifecycle every network transport shares: frames that arrive before the handler is set
 * wait for it; the first close reason wins; a close that does not finish within
 * CLOSE_GRACE_MS is forced with `kill`; `onClose` is reported exactly once, after both the
 * handler is set and the connection is really gone.
 */
export class LinkState {
  handler: TransportHandler | undefined;
  open = true;
  #early: Uint8Array[] | undefined;
  #closeInfo: TransportCloseInfo | undefined;
  #gone = false;
  #reported = false;
  #killTimer: NodeJS.Timeout | undefined;
  readonly #owner: LinkOwner;

  constructor(owner: LinkOwner) {
    this.#owner = owner;
  }

  setHandler(handler: TransportHandler): void {
    if (this.handler) throw new MusterError(ErrorCode.INVALID_ARGUMENT, "transport handler already set");
    this.handler = handler;
    const early = this.#early;
    this.#early = undefined;
    if (early) for (const f of early) handler.onFrame(f);
    this.#report();
  }

  /** Hands a frame to the handler, or keeps it until there is one. */
  deliver(frame: Uint8Array): void {
    if (this.handler) this.handler.onFrame(frame);
    else {
      this.#early ??= [];
      this.#early.push(frame);
    }
  }

  /** Records the first close reason; later ones are ignored. Arms the forced close. */
  shut(info: TransportCloseInfo): void {
    if (this.#closeInfo) return;
    this.open = false;
    this.#closeInfo = info;
    if (!this.#gone) {
      this.#killTimer = setTimeout(killLink, CLOSE_GRACE_MS, this.#owner);
      this.#killTimer.unref();
    }
  }

  /** The underlying connection is closed: report (with `fallback` if no reason was recorded). */
  gone(fallback: TransportCloseInfo): void {
    this.#gone = true;
    clearTimeout(this.#killTimer);
    this.shut(fallback);
    this.#report();
  }

  #report(): void {
    if (!this.handler || !this.#gone || this.#reported || !this.#closeInfo) return;
    this.#reported = true;
    this.handler.onClose(this.#closeInfo);
  }
}
