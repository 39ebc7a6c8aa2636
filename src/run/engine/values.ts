/**
 * Finch's value forms: string-ints ("1,000", "10k", "1KiB", "1GiB"), Go durations ("5s",
 * "1m30s", "500ms") and string-bools ("yes", "true", "on", "aye"). Each parser returns undefined
 * for a form it does not read, so that the caller names the file, line and field.
 */

const SI: Record<string, number> = { k: 1e3, m: 1e6, g: 1e9, t: 1e12, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12 };
const IEC: Record<string, number> = { kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40 };

/** A string-int: digits with optional commas, an optional fraction, an optional SI or IEC suffix. */
export function parseStringInt(v: unknown): number | undefined {
  if (typeof v === "number") return Number.isSafeInteger(v) && v >= 0 ? v : undefined;
  if (typeof v !== "string") return undefined;
  const t = v.trim();
  if (t === "") return 0;
  const m = /^(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?\s*([A-Za-z]{0,3})$/.exec(t);
  if (!m) return undefined;
  const base = Number(m[1]!.replaceAll(",", "") + (m[2] ?? ""));
  const unit = m[3]!.toLowerCase();
  const mult = unit === "" || unit === "b" ? 1 : (SI[unit] ?? IEC[unit]);
  if (mult === undefined) return undefined;
  const n = Math.round(base * mult);
  return Number.isSafeInteger(n) ? n : undefined;
}

const DURATION_UNITS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** A Go duration ("1h2m3.5s", "500ms", "0"), in milliseconds. */
export function parseDuration(v: unknown): number | undefined {
  if (typeof v === "number") return v === 0 ? 0 : undefined;
  if (typeof v !== "string") return undefined;
  const t = v.trim();
  if (t === "" || t === "0") return 0;
  let ms = 0;
  let rest = t;
  while (rest.length > 0) {
    const m = /^(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/.exec(rest);
    if (!m) return undefined;
    ms += Number(m[1]) * DURATION_UNITS[m[2]!]!;
    rest = rest.slice(m[0].length);
  }
  return Number.isFinite(ms) && ms <= 2 ** 31 * 1000 ? ms : undefined;
}

/** A string-bool: "true", "yes", "on", "aye" (any case) and YAML true are true; anything else false. */
export function parseStringBool(v: unknown): boolean {
  if (typeof v === "boolean") return v;
  return typeof v === "string" && ["true", "yes", "on", "aye"].includes(v.trim().toLowerCase());
}

/** Percentiles as Finch's reporters take them: "P95,P99", "99.9", "P999" (= 99.9). */
export function parsePercentiles(v: unknown): number[] | undefined {
  if (v === undefined) return undefined;
  const text = typeof v === "number" ? String(v) : v;
  if (typeof text !== "string") return undefined;
  const out: number[] = [];
  for (const part of text.split(",")) {
    const p = part.trim().replace(/^[Pp]/, "");
    if (p === "") continue;
    // Finch's names: P999 is 99.9, P9999 99.99.
    const n = /^9{3,}$/.test(p) ? Number(`99.${p.slice(2)}`) : Number(p);
    if (!Number.isFinite(n) || n <= 0 || n > 100) return undefined;
    out.push(n);
  }
  return out.length > 0 ? out.sort((a, b) => a - b) : undefined;
}
