import { ErrorCode, isErrorCode } from "./codes.js";

/** The plain-object form of an error, as carried on the wire. */
export interface ErrorBody {
  code: ErrorCode;
  message: string;
  details?: unknown;
}

/**
 * The one error class of muster. `code` is from a closed set (see `ErrorCode`);
 * `message` is prefixed with the code so that logs read well on their own.
 */
export class MusterError extends Error {
  override readonly name = "MusterError";
  readonly code: ErrorCode;
  /** The message without the `[CODE]` prefix. */
  readonly rawMessage: string;
  readonly details: unknown;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; details?: unknown }) {
    super(`[${code}] ${message}`, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.code = code;
    this.rawMessage = message;
    this.details = options?.details;
  }

  /** Turns anything thrown into a MusterError; unknown errors become INTERNAL with a cause. */
  static from(err: unknown, fallback: ErrorCode = ErrorCode.INTERNAL): MusterError {
    if (err instanceof MusterError) return err;
    if (err instanceof Error) {
      if (err.name === "AbortError" || err.name === "TimeoutError") {
        const reason = (err as { cause?: unknown }).cause;
        if (reason instanceof MusterError) return reason;
      }
      return new MusterError(fallback, err.message, { cause: err });
    }
    return new MusterError(fallback, String(err));
  }

  /** Rebuilds an error received from a peer; an unknown code becomes UNKNOWN. */
  static fromBody(body: unknown): MusterError {
    if (typeof body !== "object" || body === null) {
      return new MusterError(ErrorCode.UNKNOWN, "peer sent a malformed error");
    }
    const b = body as Record<string, unknown>;
    const message = typeof b.message === "string" ? b.message : "peer sent an error without a message";
    const code = isErrorCode(b.code) ? b.code : ErrorCode.UNKNOWN;
    return new MusterError(code, message, { details: b.details });
  }

  toBody(): ErrorBody {
    const body: ErrorBody = { code: this.code, message: this.rawMessage };
    if (this.details !== undefined) body.details = this.details;
    return body;
  }
}
