import { cpus, freemem, totalmem } from "node:os";
import type { ResultRow, ScenarioName } from "./scenarios.js";

/** The machine a run measured. */
export function machine(): { cpu: string; cores: number; memoryGiB: number; node: string; platform: string } {
  const c = cpus();
  return {
    cpu: c[0]?.model.trim() ?? "unknown",
    cores: c.length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
  };
}

const find = (rows: readonly ResultRow[], scenario: ScenarioName, system: string, size: number) =>
  rows.find((r) => r.scenario === scenario && r.system === system && r.size === size && !r.error);

/** One target of the scenario table, checked against the figures of the same run. */
export interface TargetCheck {
  scenario: string;
  target: string;
  /** What was measured, e.g. `0.94×` or `182 ms`. */
  measured: string;
  /** undefined when a figure it needs is missing. */
  met: boolean | undefined;
}

const ratio = (a: number | undefined, b: number | undefined): number | undefined =>
  a === undefined || b === undefined || b === 0 ? undefined : a / b;
const fmtRatio = (x: number | undefined): string => (x === undefined ? "n/a" : `${x.toFixed(2)}×`);

/** The targets of the benchmark (64-byte payloads), checked against `rows`. */
export function checkTargets(rows: readonly ResultRow[]): TargetCheck[] {
  const out: TargetCheck[] = [];
  const m = (scenario: ScenarioName, system: string, metric: string, size = 64): number | undefined =>
    find(rows, scenario, system, size)?.metrics[metric];
  const atLeast = (scenario: string, target: string, x: number | undefined, min: number): void => {
    out.push({ scenario, target, measured: fmtRatio(x), met: x === undefined ? undefined : x >= min });
  };
  const atMost = (scenario: string, target: string, x: number | undefined, max: number): void => {
    out.push({ scenario, target, measured: fmtRatio(x), met: x === undefined ? undefined : x <= max });
  };
  const rate = (scenario: ScenarioName, s: string) => m(scenario, s, "callsPerSec");
  atLeast(
    "rtt",
    "muster/tcp ≥ 0.95 × raw TCP",
    ratio(rate("rtt", "muster/tcp"), rate("rtt", "raw-tcp")),
    0.95,
  );
  atLeast("rtt", "muster/ws ≥ 0.95 × raw ws", ratio(rate("rtt", "muster/ws"), rate("rtt", "raw-ws")), 0.95);
  atLeast(
    "rtt",
    "muster/ws ≥ 2.5 × Socket.IO",
    ratio(rate("rtt", "muster/ws"), rate("rtt", "socket.io")),
    2.5,
  );
  const pipe4k = (s: string) => m("pipe", s, "callsPerSec", 4096);
  atLeast("pipe 4 KiB", "muster/tcp ≥ 0.95 × raw TCP", ratio(pipe4k("muster/tcp"), pipe4k("raw-tcp")), 0.95);
  atLeast("pipe 4 KiB", "muster/ws ≥ 0.95 × raw ws", ratio(pipe4k("muster/ws"), pipe4k("raw-ws")), 0.95);
  for (const s of ["muster/tcp", "muster/ws"]) {
    atLeast("pipe", `${s} ≥ 1.2 × raw ws`, ratio(rate("pipe", s), rate("pipe", "raw-ws")), 1.2);
    atLeast("pipe", `${s} ≥ 1.5 × Socket.IO`, ratio(rate("pipe", s), rate("pipe", "socket.io")), 1.5);
  }
  const fan = (scenario: ScenarioName, s: string) => m(scenario, s, "medianMs");
  for (const s of ["muster/tcp", "muster/ws"]) {
    atMost(
      "fanout-1k",
      `${s} median ≤ 0.5 × Socket.IO's`,
      ratio(fan("fanout-1k", s), fan("fanout-1k", "socket.io")),
      0.5,
    );
    // Against the raw baseline of the same transport.
    const raw = s === "muster/tcp" ? "raw-tcp" : "raw-ws";
    const cpu = (scenario: ScenarioName, x: string) => m(scenario, x, "serverCpuUsPerAgent");
    for (const scenario of ["fanout-1k", "fanout-10k"] as const) {
      atMost(
        scenario,
        `${s} server CPU per agent ≤ 1.2 × ${raw}'s`,
        ratio(cpu(scenario, s), cpu(scenario, raw)),
        1.2,
      );
      atMost(scenario, `${s} median ≤ 1.1 × ${raw}'s`, ratio(fan(scenario, s), fan(scenario, raw)), 1.1);
    }
    const med = fan("fanout-10k", s);
    out.push({
      scenario: "fanout-10k",
      target: `${s}: every round completes, median ≤ 250 ms`,
      measured: med === undefined ? "n/a" : `${med.toFixed(1)} ms`,
      met: med === undefined ? undefined : med <= 250,
    });
    out.push(bigFanoutTarget(rows, s));
    for (const metric of ["rssPerConnKiB", "heapPerConnKiB"]) {
      atMost(
        "idle-mem",
        `${s} ${metric === "rssPerConnKiB" ? "RSS" : "heap"} per connection ≤ raw ws`,
        ratio(m("idle-mem", s, metric, 0), m("idle-mem", "raw-ws", metric, 0)),
        1,
      );
    }
    out.push(...stormTargets(rows, s));
  }
  out.push(...stormTargets(rows, "muster/tcp+auth"));
  return out;
}

/** fanout-100k: completes (time and server RSS recorded); not run where the machine cannot. */
function bigFanoutTarget(rows: readonly ResultRow[], s: string): TargetCheck {
  const row = rows.find((r) => r.scenario === "fanout-100k" && r.system === s);
  const target = `${s}: completes; time and server RSS recorded`;
  if (row === undefined) return { scenario: "fanout-100k", target, measured: "n/a", met: undefined };
  if (row.skipped !== undefined)
    return { scenario: "fanout-100k", target, measured: `not run: ${row.skipped}`, met: undefined };
  if (row.error !== undefined) return { scenario: "fanout-100k", target, measured: "failed", met: false };
  const x = row.metrics;
  return {
    scenario: "fanout-100k",
    target,
    measured: `${x.clients} agents, median ${x.medianMs!.toFixed(0)} ms, server RSS ${x.serverRssMiB!.toFixed(0)} MiB`,
    met: true,
  };
}

/** The storm's target for one system: absent from the run, nothing to check. */
function stormTargets(rows: readonly ResultRow[], s: string): TargetCheck[] {
  const storm = find(rows, "storm", s, 64)?.metrics;
  if (storm === undefined && s.endsWith("+auth")) return [];
  return [
    {
      scenario: "storm",
      target: `${s}: all resumed ≤ 10 s, nothing lost or repeated, lag ≤ 1 s`,
      measured:
        storm === undefined
          ? "n/a"
          : `${(storm.resumeAllMs! / 1000).toFixed(2)} s, ${storm.callsLost} lost, ${storm.duplicates} repeated, lag ${storm.lagMaxMs!.toFixed(0)} ms`,
      met:
        storm === undefined
          ? undefined
          : storm.resumeAllMs! <= 10_000 &&
            storm.callsLost === 0 &&
            storm.duplicates === 0 &&
            storm.expired === 0 &&
            storm.lagMaxMs! <= 1000,
    },
  ];
}

const COLUMNS: Record<ScenarioName, [metric: string, title: string][]> = {
  rtt: [
    ["callsPerSec", "calls/s"],
    ["p50Ms", "p50 ms"],
    ["p99Ms", "p99 ms"],
    ["serverCpuUsPerCall", "server CPU µs/call"],
    ["clientCpuUsPerCall", "client CPU µs/call"],
  ],
  pipe: [
    ["callsPerSec", "calls/s"],
    ["serverCpuUsPerCall", "server CPU µs/call"],
    ["clientCpuUsPerCall", "client CPU µs/call"],
  ],
  "fanout-1k": [
    ["clients", "clients"],
    ["medianMs", "median ms"],
    ["p90Ms", "p90 ms"],
    ["serverCpuUsPerAgent", "server CPU µs/agent"],
    ["serverElu", "server ELU"],
    ["lagMaxMs", "max loop lag ms"],
  ],
  "fanout-10k": [
    ["clients", "clients"],
    ["rounds", "rounds"],
    ["medianMs", "median ms"],
    ["p90Ms", "p90 ms"],
    ["serverCpuUsPerAgent", "server CPU µs/agent"],
    ["serverElu", "server ELU"],
    ["lagMaxMs", "max loop lag ms"],
    ["serverRssMiB", "server RSS MiB"],
  ],
  "fanout-100k": [
    ["clients", "clients"],
    ["rounds", "rounds"],
    ["medianMs", "median ms"],
    ["p90Ms", "p90 ms"],
    ["serverCpuUsPerAgent", "server CPU µs/agent"],
    ["serverElu", "server ELU"],
    ["lagMaxMs", "max loop lag ms"],
    ["serverRssMiB", "server RSS MiB"],
  ],
  "idle-mem": [
    ["connections", "connections"],
    ["rssPerConnKiB", "RSS KiB/conn"],
    ["heapPerConnKiB", "heap KiB/conn"],
  ],
  stream: [
    ["mbPerSec", "MB/s"],
    ["framesPerSec", "frames/s"],
  ],
  storm: [
    ["agents", "agents"],
    ["resumeAllMs", "all resumed ms"],
    ["reconnectAllMs", "all reconnected ms"],
    ["callsChecked", "calls checked"],
    ["callsLost", "lost"],
    ["duplicates", "repeated"],
    ["expired", "expired"],
    ["lagMaxMs", "max loop lag ms"],
  ],
};

/** The first metric of each scenario, and whether bigger is better: the ratio column. */
const HEADLINE: Partial<Record<ScenarioName, [string, "higher" | "lower"]>> = {
  rtt: ["callsPerSec", "higher"],
  pipe: ["callsPerSec", "higher"],
  "fanout-1k": ["medianMs", "lower"],
  "fanout-10k": ["medianMs", "lower"],
  "fanout-100k": ["medianMs", "lower"],
  "idle-mem": ["rssPerConnKiB", "lower"],
  stream: ["mbPerSec", "higher"],
};

function fmt(v: number | undefined): string {
  if (v === undefined || Number.isNaN(v)) return "–";
  if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString("en-US");
  if (Number.isInteger(v)) return String(v);
  return v.toFixed(Math.abs(v) >= 10 ? 1 : 2);
}

/**
 * Markdown tables, one per scenario and payload size, with each system's headline figure as a
 * ratio to the first baseline present (raw TCP for muster/tcp, raw ws otherwise).
 */
export function renderTables(rows: readonly ResultRow[]): string {
  const out: string[] = [];
  const scenarios = [...new Set(rows.map((r) => r.scenario))];
  for (const scenario of scenarios) {
    const sizes = [...new Set(rows.filter((r) => r.scenario === scenario).map((r) => r.size))];
    for (const size of sizes) {
      const these = rows.filter((r) => r.scenario === scenario && r.size === size);
      const cols = COLUMNS[scenario].filter(([k]) => these.some((r) => r.metrics[k] !== undefined));
      const head = these.some((r) => r.system.startsWith("raw-") && !r.error && !r.skipped)
        ? HEADLINE[scenario]
        : undefined;
      const base = (system: string): ResultRow | undefined =>
        these.find((r) => r.system === (system.endsWith("tcp") ? "raw-tcp" : "raw-ws") && !r.error);
      out.push(
        `### ${scenario}${size > 0 ? ` — ${size >= 1024 ? `${size / 1024} KiB` : `${size} B`}` : ""}`,
        "",
      );
      const titles = ["system", ...cols.map(([, t]) => t), ...(head ? ["vs raw (same transport)"] : [])];
      out.push(
        `| ${titles.join(" | ")} |`,
        `|${titles.map((_, k) => (k === 0 ? "---" : "---:")).join("|")}|`,
      );
      for (const r of these) {
        if (r.error) {
          out.push(`| ${r.system} | failed: ${r.error.replaceAll("|", "\\|")} |`);
          continue;
        }
        if (r.skipped) {
          out.push(`| ${r.system} | not run: ${r.skipped.replaceAll("|", "\\|")} |`);
          continue;
        }
        const cells = [r.system, ...cols.map(([k]) => fmt(r.metrics[k]))];
        if (head) {
          const b = base(r.system)?.metrics[head[0]];
          cells.push(fmtRatio(ratio(r.metrics[head[0]], b)));
        }
        out.push(`| ${cells.join(" | ")} |`);
      }
      out.push("");
    }
  }
  return out.join("\n");
}

/** The whole RESULTS.md: machine, command, targets, tables. */
export function renderResults(rows: readonly ResultRow[], command: string, date: Date): string {
  const m = machine();
  const targets = checkTargets(rows);
  const lines = [
    "# Benchmark results",
    "",
    `Measured ${date.toISOString().slice(0, 16).replace("T", " ")} UTC with \`${command}\`.`,
    "",
    `Machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB (${Math.round(freemem() / 2 ** 30)} GiB free at the end), ` +
      `Node.js ${m.node}, ${m.platform}. Servers and clients run in separate processes on loopback.`,
    "",
    "## Targets (64-byte payloads, ratios from this run)",
    "",
    "| scenario | target | measured | met |",
    "|---|---|---:|:---:|",
    ...targets.map(
      (t) =>
        `| ${t.scenario} | ${t.target} | ${t.measured} | ${t.met === undefined ? "–" : t.met ? "yes" : "**no**"} |`,
    ),
    "",
    "## Figures",
    "",
    renderTables(rows),
  ];
  return lines.join("\n");
}
