// A remote peer cannot flood the server's logs, over real TCP: refusals are logged a few at a
// time per peer and the rest counted into one summary line, and what a peer sends (method
// names, close messages) is cut short before it reaches a log line or an agent's record.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createAgent, type MusterAgent } from "../src/agent/create-agent.js";
import { generateKey } from "../src/auth/keys.js";
import { issueToken } from "../src/auth/tokens.js";
import type { MusterError } from "../src/errors/muster-error.js";
import { DEFAULTS } from "../src/internal/defaults.js";
import { connectOperator } from "../src/operator/create-operator.js";
import { createServer, type MusterServer } from "../src/server/create-server.js";
import { FrameType } from "../src/wire/frame.js";
import { captureLogger, type LogLine } from "./support/capture-logger.js";
import { quickReconnect, until } from "./support/fleet.js";
import { RawPeer } from "./support/raw-peer.js";

const key = generateKey();
const REFUSED = "call refused: permission denied";

describe("log flooding", () => {
  const lines: LogLine[] = [];
  let server: MusterServer;
  let url: string;
  let agent: MusterAgent;
  before(async () => {
    server = createServer({
      listen: ["tcp://127.0.0.1:0"],
      auth: { key, agentMethods: ["report.*"] },
      logger: captureLogger(lines, (level) => level !== "trace" && level !== "debug"),
    });
    server.handle("report.ok", () => "ok");
    server.handle("admin.secret", () => "secret");
    await server.start();
    url = server.listeners[0]!.url;
    const token = await issueToken(key, { role: "agent", subject: "pest" });
    agent = createAgent({ name: "pest", servers: [url], token, reconnect: quickReconnect });
    agent.start();
    await agent.connected();
  });
  after(async () => {
    await agent.close();
    await server.close();
  });

  const bytes = (ls: LogLine[]): number => ls.reduce((n, l) => n + JSON.stringify(l).length, 0);

  it("logs the first refusals of a peer, then counts the rest into one summary line", async (t) => {
    const mark = lines.length;
    const total = 3000;
    for (let sent = 0; sent < total; sent += 500) {
      const batch = Array.from({ length: 500 }, () =>
        agent.call("admin.secret").then(
          () => "ok",
          (e: MusterError) => e.code,
        ),
      );
      assert.deepEqual(new Set(await Promise.all(batch)), new Set(["PERMISSION_DENIED"]));
    }
    assert.equal(await agent.call("report.ok"), "ok", "granted calls still work");
    const during = lines.slice(mark);
    const refusals = during.filter((l) => l.msg === REFUSED);
    assert.equal(refusals.length, DEFAULTS.refusalLogBurst, "only the first refusals are written");
    t.diagnostic(`${during.length} lines, ${bytes(during)} bytes of log for ${total} refusals`);
    assert.ok(bytes(during) < 20_000, `${bytes(during)} bytes of log for ${total} refusals`);
    // The peer leaves: what was held back is summed up.
    await agent.close();
    await until(() => lines.some((l) => /suppressed/.test(l.msg)), 10_000, "the summary line");
    const summary = lines.find((l) => /suppressed/.test(l.msg))!;
    assert.equal(summary.level, "warn");
    assert.equal(summary.obj.suppressed, total - DEFAULTS.refusalLogBurst);
    assert.deepEqual(summary.obj.byMessage, { [REFUSED]: total - DEFAULTS.refusalLogBurst });
  });

  it("cuts what a peer sends short in log lines and in the agent list", async () => {
    const mark = lines.length;
    // An agent whose CLOSE carries 300 KB of message.
    const token = await issueToken(key, { role: "agent", subject: "chatty" });
    const chatty = await RawPeer.join(url, "agent", "chatty", { auth: token });
    chatty.send({ type: FrameType.CLOSE, close: { code: "protocol_error", message: "m".repeat(300_000) } });
    await until(() => server.agent("chatty")?.state === "resuming", 10_000, "the link to drop");
    chatty.destroy();
    const reason = server.agent("chatty")!.disconnectReason!;
    assert.ok(reason.length < 300, `disconnectReason of ${reason.length} characters`);
    // An operator granted only sys.ping relays a method of 250 characters (the wire allows
    // 255), then one of 100,000.
    const opToken = await issueToken(key, { role: "operator", subject: "nosy", methods: ["sys.ping"] });
    const op = await connectOperator({ server: url, token: opToken });
    try {
      await assert.rejects(
        op.call("all", "m".repeat(250)).done,
        (e: MusterError) => e.code === "PERMISSION_DENIED" && e.rawMessage.length < 300,
      );
      await assert.rejects(
        op.call("all", "m".repeat(100_000)).done,
        (e: MusterError) =>
          e.code === "INVALID_ARGUMENT" &&
          e.rawMessage === "muster.call: method is 100000 bytes, more than 255",
      );
    } finally {
      await op.close();
    }
    const during = lines.slice(mark);
    assert.ok(
      during.some((l) => /relay refused/.test(l.msg)),
      "the refused relay is logged",
    );
    const longest = Math.max(...during.map((l) => JSON.stringify(l).length));
    assert.ok(longest < 1500, `the longest log line is ${longest} characters`);
  });
});
