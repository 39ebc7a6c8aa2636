// ServerMetrics on a scripted source: the traffic counters read at scrape, the handshake,
// authentication, denial and expiry counters, muster_ready, the label caps, and promtool.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, it } from "node:test";
import type { PresenceEvent } from "../src/presence/presence.js";
import { type MetricsSource, ServerMetrics } from "../src/server/metrics.js";
import { TrafficStats } from "../src/transport/traffic.js";

/** The value of one sample in a Prometheus exposition, or undefined. */
function sample(text: string, name: string, labels = ""): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ""} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1));
}

function source(extra: Partial<MetricsSource> = {}): MetricsSource {
  return {
    admission: { open: 0, refused: { max_connections: 0, max_connections_per_ip: 0, handshake_rate: 0 } },
    agents: () => [],
    replay: () => ({ frames: 0, bytes: 0 }),
    onEvent: (_fn: (e: PresenceEvent) => void) => () => {},
    ...extra,
  };
}

async function scrape(metrics: ServerMetrics): Promise<string> {
  return (await metrics.scrape()).body;
}

describe("ServerMetrics", () => {
  it("exposes the traffic of every transport kind as four counters, read at scrape", async () => {
    const traffic = new TrafficStats();
    const metrics = new ServerMetrics(source({ traffic: () => traffic.entries() }));
    try {
      traffic.for("tcp");
      const ws = traffic.for("ws");
      Object.assign(ws, { framesIn: 3, bytesIn: 300, framesOut: 5, bytesOut: 512 });
      let text = await scrape(metrics);
      assert.equal(sample(text, "muster_frames_received_total", 'transport="ws"'), 3);
      assert.equal(sample(text, "muster_bytes_received_total", 'transport="ws"'), 300);
      assert.equal(sample(text, "muster_frames_sent_total", 'transport="ws"'), 5);
      assert.equal(sample(text, "muster_bytes_sent_total", 'transport="ws"'), 512);
      assert.equal(sample(text, "muster_frames_received_total", 'transport="tcp"'), 0);
      ws.framesIn += 2;
      ws.bytesIn += 28;
      text = await scrape(metrics);
      assert.equal(sample(text, "muster_frames_received_total", 'transport="ws"'), 5);
      assert.equal(sample(text, "muster_bytes_received_total", 'transport="ws"'), 328);
    } finally {
      metrics.close();
    }
  });

  it("counts handshakes by result, auth failures, denials and expiries", async () => {
    const metrics = new ServerMetrics(source());
    try {
      let text = await scrape(metrics);
      for (const result of ["new", "resumed", "expired", "refused"])
        assert.equal(sample(text, "muster_handshakes_total", `result="${result}"`), 0, result);
      assert.equal(sample(text, "muster_sessions_expired_total"), 0);
      metrics.recordHandshake("new");
      metrics.recordHandshake("new");
      metrics.recordHandshake("refused");
      metrics.recordAuthFailure("bad_token");
      metrics.recordAuthFailure("bad_token");
      metrics.recordAuthFailure("expired_token");
      metrics.recordDenied("viewer");
      metrics.recordSessionExpired();
      text = await scrape(metrics);
      assert.equal(sample(text, "muster_handshakes_total", 'result="new"'), 2);
      assert.equal(sample(text, "muster_handshakes_total", 'result="refused"'), 1);
      assert.equal(sample(text, "muster_auth_failures_total", 'reason="bad_token"'), 2);
      assert.equal(sample(text, "muster_auth_failures_total", 'reason="expired_token"'), 1);
      assert.equal(sample(text, "muster_permission_denied_total", 'role="viewer"'), 1);
      assert.equal(sample(text, "muster_sessions_expired_total"), 1);
    } finally {
      metrics.close();
    }
  });

  it("keeps 32 distinct reasons and roles; later ones count as other", async () => {
    const metrics = new ServerMetrics(source());
    try {
      for (let i = 0; i < 40; i++) {
        metrics.recordAuthFailure(`reason_${i}`);
        metrics.recordDenied(`role-${i}`);
      }
      metrics.recordAuthFailure("reason_0");
      const text = await scrape(metrics);
      assert.equal(sample(text, "muster_auth_failures_total", 'reason="reason_0"'), 2);
      assert.equal(sample(text, "muster_auth_failures_total", 'reason="reason_31"'), 1);
      assert.equal(sample(text, "muster_auth_failures_total", 'reason="reason_32"'), undefined);
      assert.equal(sample(text, "muster_auth_failures_total", 'reason="other"'), 8);
      assert.equal(sample(text, "muster_permission_denied_total", 'role="other"'), 8);
      const series = text.split("\n").filter((l) => l.startsWith("muster_auth_failures_total{"));
      assert.equal(series.length, 33);
    } finally {
      metrics.close();
    }
  });

  it("muster_ready is 1 only when ready; absent without a readiness source", async () => {
    let state = "starting";
    const metrics = new ServerMetrics(source({ readiness: () => state }));
    const bare = new ServerMetrics(source());
    try {
      assert.equal(sample(await scrape(metrics), "muster_ready"), 0);
      state = "ready";
      assert.equal(sample(await scrape(metrics), "muster_ready"), 1);
      state = "draining";
      assert.equal(sample(await scrape(metrics), "muster_ready"), 0);
      const text = await scrape(bare);
      assert.equal(sample(text, "muster_ready"), undefined);
      assert.equal(sample(text, "muster_frames_received_total", 'transport="ws"'), undefined);
    } finally {
      metrics.close();
      bare.close();
    }
  });

  it("keeps prom-client's process metrics, and passes promtool check metrics", async (t) => {
    const traffic = new TrafficStats();
    traffic.for("tls").framesIn = 1;
    const metrics = new ServerMetrics(source({ traffic: () => traffic.entries(), readiness: () => "ready" }));
    try {
      metrics.recordHandshake("resumed");
      metrics.recordAuthFailure("untrusted_certificate");
      metrics.recordDenied("agent");
      const text = await scrape(metrics);
      assert.ok((sample(text, "nodejs_eventloop_lag_seconds") ?? -1) >= 0, "event-loop lag");
      assert.ok((sample(text, "nodejs_heap_size_used_bytes") ?? 0) > 0, "heap");
      assert.ok((sample(text, "process_resident_memory_bytes") ?? 0) > 0, "resident memory");
      if (spawnSync("sh", ["-c", "command -v promtool"]).status !== 0) {
        t.skip("promtool is not installed (Debian package prometheus): the lint part was skipped");
        return;
      }
      const lint = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
      assert.equal(lint.status, 0, `promtool: ${lint.stdout}${lint.stderr}`);
    } finally {
      metrics.close();
    }
  });
});
