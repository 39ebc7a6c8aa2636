import type { CallOutcome, OutcomeSummary } from "../rpc/types.js";
import type { EnrolmentRequest } from "../server/enrolment.js";

/** Renders rows as a table with a header; columns are padded to their widest cell. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}

/** "12s ago", "3m ago", "2h ago". */
export function ago(epochMs: number, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - epochMs) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

/** Waiting enrolment requests, one row each: two rows for one name are a conflict to settle. */
export function enrolmentsTable(requests: EnrolmentRequest[], now = Date.now()): string {
  // In a cluster, the server each agent dialed (where it waits, and is issued its token).
  const clustered = requests.some((r) => r.server !== undefined);
  return table(
    [
      "NAME",
      "FINGERPRINT",
      ...(clustered ? ["SERVER"] : []),
      "ADDRESS",
      "LABELS",
      "FIRST SEEN",
      "LAST SEEN",
      "",
    ],
    requests.map((r) => [
      r.name,
      r.fingerprint,
      ...(clustered ? [r.server ?? "-"] : []),
      r.address,
      Object.entries(r.labels)
        .map(([k, v]) => `${k}=${v}`)
        .join(",") || "-",
      ago(r.firstSeen, now),
      ago(r.lastSeen, now),
      r.conflict ? "conflict: another agent asks for this name" : "",
    ]),
  );
}

const STATUS_TEXT: Record<CallOutcome["status"], string> = {
  ok: "ok",
  error: "error",
  timeout: "timeout",
  not_connected: "not connected",
};

function clip(s: string, max = 160): string {
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

/**
 * One line per outcome; `nameWidth` aligns the columns of a fan-out. With `clipAt` (on a
 * terminal), a long value or error is cut there with "…"; piped, it is always whole.
 */
export function outcomeLine(o: CallOutcome, nameWidth: number, clipAt?: number): string {
  const status = STATUS_TEXT[o.status].padEnd(13);
  const took = o.status === "not_connected" ? "".padStart(9) : `${o.durationMs.toFixed(1)}ms`.padStart(9);
  const detail =
    o.status === "ok"
      ? o.value === undefined
        ? ""
        : JSON.stringify(o.value)
      : `${o.error?.code ?? ""} ${o.error?.message ?? ""}`.trim();
  const shown = clipAt === undefined ? detail : clip(detail, clipAt);
  return `${o.agent.padEnd(nameWidth)}  ${status} ${took}  ${shown}`.trimEnd();
}

export function summaryLine(s: OutcomeSummary): string {
  return `${s.ok} ok, ${s.timeout} timeout, ${s.error} error, ${s.notConnected} not connected`;
}
