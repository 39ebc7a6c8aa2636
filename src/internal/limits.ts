import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";

/**
 * An optional numeric option: `fallback` when absent, else a finite number ≥ `min`. NaN,
 * Infinity and strings are refused: each would silently disable the check it sets.
 */
export function optionLimit(value: number | undefined, fallback: number, name: string, min = 0): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value < min)
    throw new MusterError(
      ErrorCode.INVALID_ARGUMENT,
      `${name} must be a number ≥ ${min}, got ${String(value)}`,
    );
  return value;
}
