import { generateKeyPairSync } from "node:crypto";
import { Child } from "./ipc.js";
import { CHILD_PATH, plan, type ResultRow, type RunOptions } from "./scenarios.js";

interface Outcome {
  expected: number;
  ok: number;
  failures: string[];
}

/**
 * The reconnect storm, muster only: N agents (one process) reach the server through a proxy
 * (another process). With a fan-out to every agent and a call from every agent in flight, the
 * proxy cuts every link at once; the figure is the time until all N have resumed, and every
 * call must complete exactly once. Then the server is killed (SIGKILL) and started again on
 * the same port: the figure is the time until all N are connected again (new sessions).
 */
export async function runStorm(scheme: "tcp" | "ws", o: RunOptions): Promise<ResultRow[]> {
  const n = o.stormAgents ?? plan(o.quick).storm.n;
  const system = `muster/${scheme}${o.stormAuth === true ? "+auth" : ""}`;
  // With authentication: one Ed25519 key; the server verifies with it, the agents' tokens are signed with it.
  const key =
    o.stormAuth === true
      ? generateKeyPairSync("ed25519").privateKey.export({ type: "pkcs8", format: "pem" }).toString()
      : undefined;
  const rows: ResultRow[] = [];
  let server = new Child(CHILD_PATH, ["storm-server"]);
  const proxy = new Child(CHILD_PATH, ["proxy"]);
  const agents = new Child(CHILD_PATH, ["storm-agents"]);
  try {
    const { port } = await server.request<{ port: number }>("start", { scheme, host: o.host, port: 0, key });
    const { port: proxyPort } = await proxy.request<{ port: number }>("start", {
      host: o.host,
      targetPort: port,
    });
    const url = `${scheme}://${o.host}:${proxyPort}`;
    await agents.request("connect", { url, n, concurrency: 200, key }, 300_000);
    await server.request("waitConnected", { n, timeoutMs: 120_000 });
    o.log(`  ${system} storm: ${n} agents connected through the proxy`);

    // 1. Every link cut at once, calls in flight both ways; the server stays up.
    await server.request("resetCounts");
    await server.request("lagStart");
    await server.request("fanoutStart", { size: 64, timeoutMs: 120_000 });
    await agents.request("callAll", { size: 64, timeoutMs: 120_000 });
    const cutAt = Date.now();
    const cut = await proxy.request<number>("cut");
    const { at } = await server.request<{ at: number }>("waitResumed", { n, timeoutMs: 120_000 });
    const lag = await server.request<{ maxMs: number }>("lagStop");
    const fan = await server.request<Outcome>("fanoutResult");
    const calls = await agents.request<Outcome>("callResult");
    const ss = await server.request<{ duplicates: number; joins: number }>("stats");
    const as = await agents.request<{ duplicates: number; expired: number }>("stats");
    const lost = fan.expected - fan.ok + (calls.expected - calls.ok);
    const failures = [...fan.failures, ...calls.failures];
    if (failures.length > 0) o.log(`  ${system} storm: failures: ${failures.join("; ")}`);
    const metrics = {
      agents: n,
      linksCut: cut,
      resumeAllMs: at - cutAt,
      lagMaxMs: lag.maxMs,
      callsChecked: fan.expected + calls.expected,
      callsLost: lost,
      duplicates: ss.duplicates + as.duplicates,
      expired: as.expired + ss.joins,
    };
    rows.push({ scenario: "storm", system, size: 64, metrics });
    o.log(`  ${system} storm (cut): ${JSON.stringify(metrics)}`);

    // 2. The server killed and started again on the same port: all sessions are new.
    const killedAt = Date.now();
    await server.kill();
    server = new Child(CHILD_PATH, ["storm-server"]);
    await server.request("start", { scheme, host: o.host, port, key });
    await server.request("lagStart");
    const back = await server.request<{ at: number }>("waitConnected", { n, timeoutMs: 180_000 });
    const lag2 = await server.request<{ maxMs: number }>("lagStop");
    const restart = { agents: n, reconnectAllMs: back.at - killedAt, lagMaxMs: lag2.maxMs };
    rows.push({ scenario: "storm", system: `${system} restart`, size: 0, metrics: restart });
    o.log(`  ${system} storm (restart): ${JSON.stringify(restart)}`);
  } catch (err) {
    const error = err instanceof Error ? err.message : String(err);
    o.log(`  ${system} storm: FAILED ${error}`);
    rows.push({ scenario: "storm", system, size: 64, metrics: {}, error });
  } finally {
    await agents.request("close", {}, 60_000).catch(() => {});
    await Promise.all([agents.stop(), proxy.stop(), server.stop()]);
  }
  return rows;
}
