// Agents learn the cluster's servers from WELCOME and move over them, on loopback: server A is a
// scripted peer (it announces a list, then sends the agent away or drops it), server B a real one.
import assert from "node:assert/strict";
import { createServer as createTcpServer, type Server, type Socket } from "node:net";
import { after, describe, it } from "node:test";
import { createAgent, type MusterAgent } from "../src/agent/create-agent.js";
import { createServer, type MusterServer } from "../src/server/create-server.js";
import { decodeFrame, encodeFrame } from "../src/wire/codec.js";
import { type Frame, FrameType, type HelloBody, type WelcomeServers } from "../src/wire/frame.js";
import { LengthPrefixDecoder, lengthPrefix } from "../src/wire/length-prefix.js";
import { captureLogger, type LogLine } from "./support/capture-logger.js";
import { quickReconnect, until } from "./support/fleet.js";

/** What the scripted server does with a connection once its HELLO is in. */
type Script = (hello: HelloBody, socket: Socket, send: (frame: Frame) => void) => void;

/** A TCP server that speaks just enough of the protocol: HELLO in, then whatever `script` says. */
class ScriptedServer {
  readonly hellos: HelloBody[] = [];
  readonly #sockets = new Set<Socket>();
  private constructor(
    readonly server: Server,
    readonly url: string,
    public script: Script,
  ) {}

  static async start(script: Script): Promise<ScriptedServer> {
    const server = createTcpServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as { port: number }).port;
    const s = new ScriptedServer(server, `tcp://127.0.0.1:${port}`, script);
    server.on("connection", (socket) => s.#accept(socket));
    return s;
  }

  #accept(socket: Socket): void {
    this.#sockets.add(socket);
    socket.on("close", () => this.#sockets.delete(socket));
    socket.on("error", () => {});
    const send = (frame: Frame): void => {
      if (!socket.destroyed) socket.write(lengthPrefix(encodeFrame(frame)));
    };
    const decoder = new LengthPrefixDecoder(1024 * 1024);
    let greeted = false;
    socket.on("data", (chunk) =>
      decoder.push(chunk, (bytes) => {
        const frame = decodeFrame(bytes);
        if (greeted || frame.type !== FrameType.HELLO) return;
        greeted = true;
        this.hellos.push(frame.hello);
        this.script(frame.hello, socket, send);
      }),
    );
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** A WELCOME from server `name` announcing `servers`. */
function welcome(name: string, servers: unknown, ack = 0): Frame {
  return {
    type: FrameType.WELCOME,
    seq: 0,
    ack,
    welcome: {
      sessionId: `${name}-session`,
      token: `${name}-token`,
      resumed: false,
      expired: false,
      replaying: 0,
      heartbeatIntervalMs: 5000,
      resumeWindowMs: 30_000,
      server: { name, version: "0.0.0-test" },
      servers: servers as WelcomeServers,
    },
  };
}

describe("agents learn the cluster's servers from WELCOME", () => {
  const cleanups: Array<() => Promise<void>> = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  async function realServer(name: string): Promise<MusterServer> {
    const server = createServer({ name, listen: ["tcp://127.0.0.1:0"], standalone: true });
    await server.start();
    cleanups.push(() => server.close());
    return server;
  }
  function agent(name: string, servers: string[], lines: LogLine[]): MusterAgent {
    const a = createAgent({
      name,
      servers,
      reconnect: quickReconnect,
      logger: captureLogger(lines, (level) => level !== "trace"),
    });
    cleanups.push(() => a.close());
    a.start();
    return a;
  }

  it("told to go (CLOSE shutdown), the agent moves to an announced server, skipping a draining one", async () => {
    const b = await realServer("muster-b");
    const bUrl = b.listeners[0]!.url;
    const a = await ScriptedServer.start((_hello, socket, send) => {
      send(
        welcome("muster-a", [
          { name: "muster-a", urls: [a.url], load: 0 },
          { name: "muster-c", urls: ["tcp://127.0.0.1:1"], load: 0, state: "draining" },
          { name: "muster-b", urls: [`ws://127.0.0.1:9/`, bUrl], load: 3, state: "ready" },
        ]),
      );
      setTimeout(() => {
        send({ type: FrameType.CLOSE, seq: 0, ack: 0, close: { code: "shutdown", message: "draining" } });
        socket.end();
      }, 50);
    });
    cleanups.push(() => a.close());
    const lines: LogLine[] = [];
    const mover = agent("mover", [a.url], lines);
    const seen: string[][] = [];
    const urls: string[] = [];
    mover.onEvent((e) => {
      if (e.type !== "connected") return;
      urls.push(e.url);
      seen.push(mover.servers.map((s) => `${s.source} ${s.url} ${s.state ?? ""}`));
    });
    // On the agent's side: a server lists an agent before the agent has read the WELCOME.
    await until(() => urls.includes(bUrl), 5000, "the agent on server B");
    assert.equal(b.agent("mover")?.state, "connected");
    assert.equal(a.hellos.length, 1, "not back to the server that sent it away");
    // On A: A configured, B and C learned (B at its tcp:// URL, the scheme in use).
    assert.deepEqual(
      seen[0]?.sort(),
      [`configured ${a.url} `, `learned ${bUrl} ready`, "learned tcp://127.0.0.1:1 draining"].sort(),
    );
    // B announces nothing (not in a cluster): the learned servers are forgotten, A is kept.
    assert.deepEqual(mover.servers, [{ url: a.url, source: "configured" }]);
    const move = lines.find((l) => l.msg === "moving to another server");
    assert.equal(move?.level, "info");
    assert.equal(move?.obj.from, a.url);
    assert.equal(move?.obj.to, bUrl);
    assert.equal(move?.obj.after, "the server shuts down");
    assert.match(String(move?.obj.why), /the only untried server with a known load/);
    assert.ok(lines.some((l) => l.level === "debug" && l.msg === "server picked" && l.obj.url === a.url));
  });

  it("sent away with a newer list (CLOSE moved with servers), the agent goes to a server only that list names", async () => {
    // B started after the agent connected to A: only A's CLOSE tells of it. The WELCOME named a
    // server since gone (port 1); without the CLOSE's list the agent would dial it first.
    const b = await realServer("muster-b3");
    const bUrl = b.listeners[0]!.url;
    const a = await ScriptedServer.start((_hello, socket, send) => {
      send(welcome("muster-a3", [{ name: "muster-gone", urls: ["tcp://127.0.0.1:1"], load: 0 }]));
      setTimeout(() => {
        send({
          type: FrameType.CLOSE,
          seq: 0,
          ack: 0,
          close: {
            code: "moved",
            message: "draining",
            servers: [
              { name: "muster-a3", urls: [a.url], load: 1, state: "draining" },
              { name: "muster-b3", urls: [bUrl], load: 0, state: "ready" },
            ],
          },
        });
        socket.end();
      }, 50);
    });
    cleanups.push(() => a.close());
    const lines: LogLine[] = [];
    const mover = agent("mover3", [a.url], lines);
    const urls: string[] = [];
    mover.onEvent((e) => e.type === "connected" && urls.push(e.url));
    await until(() => urls.includes(bUrl), 5000, "the agent on server B");
    assert.equal(a.hellos.length, 1, "not back to the server that sent it away");
    const picked = lines.filter((l) => l.msg === "server picked" || l.msg === "moving to another server");
    assert.ok(
      !picked.some((l) => l.obj.url === "tcp://127.0.0.1:1" || l.obj.to === "tcp://127.0.0.1:1"),
      "the server only the old WELCOME named is not dialed",
    );
    const told = lines.find((l) => l.msg === "cluster servers announced on leaving");
    assert.equal(told?.obj.announced, 2);
    assert.equal(mover.state, "connected");
  });

  it("after a dropped link it tries the previous server first, then an announced one", async () => {
    const b = await realServer("muster-b2");
    const bUrl = b.listeners[0]!.url;
    const a = await ScriptedServer.start((_hello, socket, send) => {
      if (a.hellos.length === 1) {
        send(welcome("muster-a2", [{ name: "muster-b2", urls: [bUrl] }]));
        setTimeout(() => socket.destroy(), 50);
      } else socket.destroy(); // the resume fails: A is gone for good
    });
    cleanups.push(() => a.close());
    const lines: LogLine[] = [];
    const resumer = agent("resumer", [a.url], lines);
    const urls: string[] = [];
    resumer.onEvent((e) => e.type === "connected" && urls.push(e.url));
    await until(() => urls.includes(bUrl), 5000, "the agent on server B");
    assert.ok(a.hellos.length >= 2, "the previous server was tried again first");
    assert.equal(a.hellos[1]!.token, "muster-a2-token", "to resume the session there");
    const move = lines.find((l) => l.msg === "moving to another server");
    assert.equal(move?.obj.to, bUrl);
    assert.equal(b.agent("resumer")?.state, "connected");
    assert.equal(resumer.state, "connected");
  });

  it("a hostile list is ignored with a warning; the session goes on", async () => {
    const huge = Array.from({ length: 65 }, (_, i) => ({ name: `s${i}`, urls: [`tcp://10.0.0.${i}:1`] }));
    const a = await ScriptedServer.start((_hello, _socket, send) => send(welcome("muster-h", huge)));
    cleanups.push(() => a.close());
    const lines: LogLine[] = [];
    const calm = agent("calm", [a.url], lines);
    await calm.connected();
    assert.equal(calm.state, "connected");
    assert.deepEqual(calm.servers, [{ url: a.url, source: "configured" }]);
    const warning = lines.find((l) => l.msg === "frame field ignored");
    assert.equal(warning?.level, "warn");
    assert.match(String(warning?.obj.reason), /^WELCOME\.servers ignored: more than 64 servers \(65\)$/);
  });
});
