// Server limits over real TCP on loopback: connections per address, the handshake rate with
// its retry hints, a handshake that never finishes, and a peer that stops reading. Each bad
// peer gets a precise CLOSE (or is dropped with a logged reason) and the others are unaffected.
import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import { createAgent, type MusterAgent } from "../src/agent/create-agent.js";
import { ErrorCode } from "../src/errors/codes.js";
import type { MusterError } from "../src/errors/muster-error.js";
import { VERSION } from "../src/internal/version.js";
import type { PresenceEvent } from "../src/presence/presence.js";
import { createServer, type MusterServer } from "../src/server/create-server.js";
import type { ServerOptions } from "../src/server/options.js";
import { decodeFrame, encodeFrame, encodeValue } from "../src/wire/codec.js";
import { type CloseBody, type Frame, FrameType } from "../src/wire/frame.js";
import { LengthPrefixDecoder, lengthPrefix } from "../src/wire/length-prefix.js";
import { captureLogger, type LogLine } from "./support/capture-logger.js";
import { freePort, runCli, startCli } from "./support/cli.js";
import { quickReconnect, until } from "./support/fleet.js";

async function startServer(options: Partial<ServerOptions>): Promise<{ server: MusterServer; url: string }> {
  const server = createServer({ listen: ["tcp://127.0.0.1:0"], standalone: true, ...options });
  await server.start();
  return { server, url: server.listeners[0]!.url };
}

function portOf(url: string): number {
  return Number(new URL(url).port);
}

/** A bare TCP client speaking frames by hand. */
class RawPeer {
  readonly frames: Frame[] = [];
  closed = false;
  readonly #decoder = new LengthPrefixDecoder(16 * 1024 * 1024);
  private constructor(readonly socket: Socket) {
    socket.on("data", (chunk) => this.#decoder.push(chunk, (f) => this.frames.push(decodeFrame(f))));
    socket.on("close", () => {
      this.closed = true;
    });
    socket.on("error", () => {});
  }
  static open(port: number): Promise<RawPeer> {
    return new Promise((resolve, reject) => {
      const s = connect(port, "127.0.0.1", () => resolve(new RawPeer(s)));
      s.once("error", reject);
    });
  }
  send(frame: Frame): void {
    this.socket.write(lengthPrefix(encodeFrame(frame)));
  }
  hello(name: string): void {
    this.send({
      type: FrameType.HELLO,
      seq: 0,
      ack: 0,
      hello: { role: "agent", name, labels: {}, version: VERSION },
    });
  }
  closeFrame(): CloseBody | undefined {
    const f = this.frames.find((x) => x.type === FrameType.CLOSE);
    return f?.type === FrameType.CLOSE ? f.close : undefined;
  }
}

describe("connection limits", () => {
  let server: MusterServer;
  let url: string;
  const agents: MusterAgent[] = [];
  before(async () => {
    ({ server, url } = await startServer({ maxConnectionsPerIp: 3 }));
    server.handle("echo", (x) => x);
  });
  after(async () => {
    await Promise.all(agents.map((a) => a.close()));
    await server.close();
  });

  it("refuses a connection over the per-address limit with CLOSE busy and a hint; the others work on", async () => {
    for (const name of ["a1", "a2", "a3"]) {
      const a = createAgent({ name, servers: [url], reconnect: quickReconnect });
      a.handle("ping", () => name);
      agents.push(a);
      a.start();
      await a.connected();
    }
    const extra = await RawPeer.open(portOf(url));
    extra.hello("a4");
    await until(() => extra.closed, 5000, "the fourth connection to be closed");
    const close = extra.closeFrame();
    assert.ok(close, "a CLOSE frame before the close");
    assert.equal(close.code, "busy");
    assert.match(close.message, /too many connections from 127\.0\.0\.1 \(limit 3\)/);
    assert.ok((close.retryAfterMs ?? 0) > 0, "a retry hint");
    assert.equal(server.admission.refused.max_connections_per_ip, 1);
    assert.equal(server.agents().length, 3, "the refused one never became an agent");
    // The three admitted agents still answer.
    const out = await server.call<string>("all", "ping").done;
    assert.deepEqual(out.outcomes.map((o) => o.value).sort(), ["a1", "a2", "a3"]);
    // A closed connection frees its place.
    await agents.pop()!.close();
    await until(() => server.admission.open === 2, 5000, "the place to be freed");
    const again = await RawPeer.open(portOf(url));
    again.hello("a5");
    await until(() => again.frames.some((f) => f.type === FrameType.WELCOME), 5000, "WELCOME for a5");
    again.socket.destroy();
  });
});

describe("handshake rate", () => {
  it("spreads a burst of 60 agents over time with retry hints, and admits all of them", async () => {
    const lines: LogLine[] = [];
    const { server, url } = await startServer({
      handshakesPerSecond: 40,
      handshakeBurst: 10,
      logger: captureLogger(lines, (level) => level !== "trace"),
    });
    const agents = Array.from({ length: 60 }, (_, i) =>
      createAgent({ name: `r${i}`, servers: [url], reconnect: quickReconnect }),
    );
    const retries: number[] = [];
    for (const a of agents) {
      a.onEvent((e) => {
        if (e.type === "retry") retries.push(e.delayMs);
      });
      a.start();
    }
    try {
      await Promise.all(agents.map((a) => a.connected()));
      assert.equal(server.agents().filter((a) => a.state === "connected").length, 60);
      const refused = server.admission.refused.handshake_rate;
      assert.ok(refused >= 50 - 10, `most of the burst was told to come back later (${refused})`);
      // The agents waited as told: quickReconnect alone would retry within 20 ms.
      assert.ok(
        Math.max(...retries) >= 100,
        `retry delays follow the server's hints (${Math.max(...retries)})`,
      );
      assert.ok(
        lines.every((l) => l.level !== "warn" || !/connection refused/.test(l.msg)),
        "rate refusals are not warnings",
      );
    } finally {
      await Promise.all(agents.map((a) => a.close()));
      await server.close();
    }
  });
});

describe("a handshake that never finishes", () => {
  it("is closed with handshake_timeout; an agent connected meanwhile is unaffected", async () => {
    const { server, url } = await startServer({ handshakeTimeoutMs: 300 });
    const agent = createAgent({ name: "ok", servers: [url], reconnect: quickReconnect });
    agent.handle("ping", () => "pong");
    agent.start();
    try {
      await agent.connected();
      const slow = await RawPeer.open(portOf(url));
      slow.socket.write(Buffer.from([0, 0, 0, 40, 1])); // a length prefix and one byte of the frame
      const started = Date.now();
      await until(() => slow.closed, 5000, "the half-sent handshake to be closed");
      assert.ok(Date.now() - started >= 250, "not before the handshake timeout");
      assert.equal(slow.closeFrame()?.code, "handshake_timeout");
      assert.equal(await server.callAgent("ok", "ping"), "pong");
    } finally {
      await agent.close();
      await server.close();
    }
  });
});

describe("slow consumer", () => {
  it("drops the link of a peer that stops reading, logs why, and keeps memory bounded", async () => {
    const lines: LogLine[] = [];
    const { server, url } = await startServer({
      slowConsumerBytes: 512 * 1024,
      slowConsumerMs: 300,
      logger: captureLogger(lines, (level) => level !== "trace"),
    });
    const events: PresenceEvent[] = [];
    server.onEvent((e) => events.push(e));
    const good = createAgent({ name: "good", servers: [url], reconnect: quickReconnect });
    good.handle("ping", () => "pong");
    good.start();
    const stuck = await RawPeer.open(portOf(url));
    try {
      await good.connected();
      stuck.hello("stuck");
      await until(() => stuck.frames.some((f) => f.type === FrameType.WELCOME), 5000, "WELCOME");
      stuck.socket.pause(); // stops reading: the kernel buffers fill, then the server's
      const big = "x".repeat(256 * 1024);
      const calls: Promise<unknown>[] = [];
      for (let i = 0; i < 60; i++) {
        calls.push(server.callAgent("stuck", "anything", big, { timeoutMs: 20_000 }).catch((e) => e));
      }
      await until(
        () => events.some((e) => e.type === "disconnect" && e.agent.name === "stuck"),
        15_000,
        "the stuck agent's link to be dropped",
      );
      const drop = events.find((e) => e.type === "disconnect" && e.agent.name === "stuck");
      assert.ok(
        drop?.type === "disconnect" && drop.reason.startsWith("slow_consumer:"),
        String(drop && "reason" in drop && drop.reason),
      );
      const logged = lines.find((l) => l.level === "warn" && l.msg.startsWith("slow consumer"));
      assert.ok(logged, "a warning names the slow consumer");
      assert.equal((logged.obj as { peer: string }).peer, "stuck");
      // Unacknowledged frames stay in the replay window (bounded by replayMaxBytes): the session
      // can resume; the link's own buffers are gone with the link.
      assert.equal(server.agent("stuck")?.state, "resuming");
      // The well-behaved agent never noticed.
      assert.equal(await server.callAgent("good", "ping"), "pong");
      assert.equal(server.agent("good")?.state, "connected");
    } finally {
      stuck.socket.destroy();
      await good.close();
      await server.close();
    }
  });
});

describe("a CLOSE for the link only", () => {
  it("protocol_error from a peer drops that link; the session resumes with nothing lost", async () => {
    const { server, url } = await startServer({});
    try {
      const first = await RawPeer.open(portOf(url));
      first.hello("linky");
      await until(() => first.frames.some((f) => f.type === FrameType.WELCOME), 5000, "WELCOME");
      const welcome = first.frames.find((f) => f.type === FrameType.WELCOME);
      assert.ok(welcome?.type === FrameType.WELCOME);
      // A call to the agent is in flight when the agent drops the link as broken.
      const call = server.callAgent("linky", "m", 1, { timeoutMs: 10_000 });
      await until(() => first.frames.some((f) => f.type === FrameType.CALL), 5000, "the CALL");
      first.send({
        type: FrameType.CLOSE,
        seq: 0,
        ack: 0,
        close: { code: "protocol_error", message: "sequence gap: expected 6, got 9" },
      });
      await until(() => server.agent("linky")?.state === "resuming", 5000, "the link to be dropped");
      first.socket.destroy();
      // Resume from ack 0: the CALL is replayed on the new link, and its answer completes the call.
      const second = await RawPeer.open(portOf(url));
      second.send({
        type: FrameType.HELLO,
        seq: 0,
        ack: 0,
        hello: { role: "agent", name: "linky", labels: {}, version: VERSION, token: welcome.welcome.token },
      });
      await until(() => second.frames.some((f) => f.type === FrameType.CALL), 5000, "the replayed CALL");
      const again = second.frames.find((f) => f.type === FrameType.WELCOME);
      assert.ok(again?.type === FrameType.WELCOME && again.welcome.resumed, "resumed, not a new session");
      const replayed = second.frames.find((f) => f.type === FrameType.CALL);
      assert.ok(replayed?.type === FrameType.CALL);
      second.send({
        type: FrameType.RESULT,
        seq: 1,
        ack: replayed.seq,
        id: replayed.id,
        payload: encodeValue("answered"),
      });
      assert.equal(await call, "answered");
      second.socket.destroy();
    } finally {
      await server.close();
    }
  });
});

describe("decoding limits", () => {
  it("a first frame larger than a HELLO is refused from its length prefix; later frames may be larger", async () => {
    const { server, url } = await startServer({ maxHelloBytes: 1000 });
    server.handle("size", (x) => (x as string).length);
    try {
      const raw = await RawPeer.open(portOf(url));
      const header = Buffer.alloc(4);
      header.writeUInt32BE(14 + 1001);
      raw.socket.write(header); // the prefix alone: no body is ever sent
      await until(() => raw.closed, 5000, "the connection to close");
      assert.deepEqual(raw.closeFrame(), {
        code: "frame_too_large",
        message: "first frame of 1015 bytes announced, limit before the handshake is 1014 bytes",
      });
      const agent = createAgent({ name: "big", servers: [url], reconnect: quickReconnect });
      agent.start();
      try {
        await agent.connected();
        assert.equal(await agent.call("size", "x".repeat(200_000)), 200_000);
      } finally {
        await agent.close();
      }
    } finally {
      await server.close();
    }
  });

  it("maxJsonDepth: a payload nested deeper is refused with INVALID_ARGUMENT, the link stays up", async () => {
    const { server, url } = await startServer({ maxJsonDepth: 8 });
    server.handle("echo", (x) => x);
    const agent = createAgent({ name: "deep", servers: [url], reconnect: quickReconnect, maxJsonDepth: 8 });
    agent.start();
    try {
      await agent.connected();
      const nest = (n: number): unknown => (n === 0 ? 1 : [nest(n - 1)]);
      assert.deepEqual(await agent.call("echo", nest(7)), nest(7));
      await assert.rejects(agent.call("echo", nest(9)), (e: MusterError) => {
        assert.equal(e.code, ErrorCode.INVALID_ARGUMENT);
        assert.match(e.message, /payload is nested deeper than 8 levels/);
        return true;
      });
      assert.equal(await agent.call("echo", "still here"), "still here");
    } finally {
      await agent.close();
      await server.close();
    }
  });

  it("limits that would disable a check are refused when the server or agent is made", () => {
    for (const bad of [Number.NaN, 3, -1, Number.POSITIVE_INFINITY])
      assert.throws(
        () => createServer({ maxFrameBytes: bad, standalone: true }),
        /maxFrameBytes must be a number ≥ 14/,
      );
    assert.throws(
      () => createServer({ maxJsonDepth: 0, standalone: true }),
      /maxJsonDepth must be a number ≥ 1, got 0/,
    );
    assert.throws(
      () => createServer({ maxHelloBytes: Number.NaN, standalone: true }),
      /maxHelloBytes must be a number ≥ 1/,
    );
    const servers = ["tcp://127.0.0.1:1"];
    assert.throws(() => createAgent({ name: "a", servers, maxFrameBytes: 10 }), /maxFrameBytes must be/);
    assert.throws(() => createAgent({ name: "a", servers, maxJsonDepth: 0.5 }), /maxJsonDepth must be/);
    assert.throws(() => createAgent({ name: "a", servers, heartbeatIntervalMs: 0 }), /heartbeatIntervalMs/);
  });
});

describe("limits through the CLI", () => {
  it("muster server --max-connections-per-ip 1: a second agent is told to retry later and says why", async () => {
    const port = await freePort();
    const url = `tcp://127.0.0.1:${port}`;
    const server = startCli([
      "server",
      "--standalone",
      "--listen",
      url,
      "--max-connections-per-ip",
      "1",
      "--log-json",
    ]);
    const procs = [server];
    try {
      await server.waitFor(`listening on ${url}`);
      const a1 = startCli(["agent", "--server", url, "--name", "one", "--log-json"]);
      procs.push(a1);
      await until(() => /"msg":"connected"/.test(a1.err + a1.out), 20_000, "agent one to connect");
      const a2 = startCli(["agent", "--server", url, "--name", "two", "--log-json"]);
      procs.push(a2);
      await until(
        () => /too many connections from 127\.0\.0\.1 \(limit 1\)/.test(a2.err + a2.out),
        20_000,
        "agent two to report the refusal",
      );
      await until(
        () => /connection refused/.test(server.err + server.out),
        5000,
        "the server to log the refusal",
      );
      const r = await runCli(["agents", "--server", url, "--json"]);
      // The operator's own connection is refused too while "one" holds the only place: it
      // exits non-zero with the reason, or lists only "one".
      if (r.code === 0)
        assert.deepEqual(
          (JSON.parse(r.out) as { name: string }[]).map((x) => x.name),
          ["one"],
        );
      else assert.match(r.err, /too many connections/);
      const bad = await runCli(["server", "--max-connections", "lots"]);
      assert.equal(bad.code, 2);
      assert.match(bad.err, /"lots" is not a whole number/);
      const tiny = await runCli(["server", "--max-frame", "10"]);
      assert.equal(tiny.code, 2);
      assert.match(tiny.err, /maxFrameBytes must be a number ≥ 14, got 10/);
      const flat = await runCli(["agent", "--max-json-depth", "0"]);
      assert.equal(flat.code, 2);
      assert.match(flat.err, /maxJsonDepth must be a number ≥ 1, got 0/);
    } finally {
      for (const p of procs) p.child.kill("SIGKILL");
    }
  });
});
