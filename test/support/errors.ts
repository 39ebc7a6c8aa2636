import assert from "node:assert/strict";
import type { ErrorCode } from "../../src/errors/codes.js";
import { MusterError } from "../../src/errors/muster-error.js";

/**
 * For `assert.throws`/`rejects`: the error is a MusterError with `code` and a message (without
 * the `[CODE]` prefix) equal to `message`, or matching it when it is a RegExp.
 */
export function isMusterError(code: ErrorCode, message: string | RegExp): (err: unknown) => true {
  return (err: unknown) => {
    assert.ok(err instanceof MusterError, `expected a MusterError, got ${String(err)}`);
    assert.equal(err.code, code);
    if (typeof message === "string") assert.equal(err.rawMessage, message);
    else assert.match(err.rawMessage, message);
    return true;
  };
}
