// The HTTP side of the server's WebSocket port: browser origins, slowloris, and per-address
// limits across address forms, over real sockets on loopback. 127.0.0.2 plays the attacker
// (another address on loopback), 127.0.0.1 the honest agent, which must keep answering.
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import WebSocket from "ws";
import { createAgent, type MusterAgent } from "../src/agent/create-agent.js";
import { generateKey } from "../src/auth/keys.js";
import { ErrorCode } from "../src/errors/codes.js";
import type { MusterError } from "../src/errors/muster-error.js";
import { connectOperator } from "../src/operator/create-operator.js";
import { createServer, type MusterServer } from "../src/server/create-server.js";
import type { ServerOptions } from "../src/server/options.js";
import { FrameType } from "../src/wire/frame.js";
import { hasOpenssl, makeCertificates } from "./support/certs.js";
import { runCli } from "./support/cli.js";
import { quickReconnect, until } from "./support/fleet.js";
import { rawTcp, rawWs } from "./support/raw-peers.js";

async function serve(
  options: Partial<ServerOptions>,
): Promise<{ server: MusterServer; port: number; url: string }> {
  const server = createServer({ listen: ["ws://127.0.0.1:0"], standalone: true, ...options });
  await server.start();
  const port = server.listeners[0]!.port;
  return { server, port, url: `ws://127.0.0.1:${port}` };
}

async function honestAgent(url: string, name = "honest"): Promise<MusterAgent> {
  const agent = createAgent({ name, servers: [url], reconnect: quickReconnect });
  agent.handle("ping", () => "pong");
  agent.start();
  await agent.connected();
  return agent;
}

/** A connection that sends the start of a request and never finishes it. */
interface HalfSent {
  socket: Socket;
  answer: string;
  closed: boolean;
}

function partialRequest(
  port: number,
  localAddress = "127.0.0.2",
  start = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ",
): Promise<HalfSent> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: "127.0.0.1", localAddress });
    const p: HalfSent = { socket, answer: "", closed: false };
    socket.on("data", (d: Buffer) => {
      p.answer += d.toString();
    });
    socket.on("close", () => {
      p.closed = true;
    });
    socket.once("connect", () => {
      socket.off("error", reject);
      socket.on("error", () => {});
      if (start !== "") socket.write(start);
      resolve(p);
    });
    socket.once("error", reject);
  });
}

describe("WebSocket upgrades from web pages", () => {
  it("a standalone server answers 403 to a browser origin before upgrading: no admin rights for a web page", async () => {
    const { server, port, url } = await serve({});
    try {
      const evil = await rawWs(port, { headers: { Origin: "https://evil.example" } });
      assert.equal(evil.upgraded, false);
      await until(() => evil.got.closed, 5000, "the refused connection to close");
      const answer = evil.got.httpAnswer ?? "";
      assert.match(answer, /^HTTP\/1\.1 403 Forbidden\r\n/);
      const body = JSON.parse(answer.slice(answer.indexOf("\r\n\r\n") + 4)) as {
        error: string;
        message: string;
      };
      assert.deepEqual(body, {
        error: "permission_denied",
        message:
          'WebSocket connections from web pages are refused in standalone mode (origin "https://evil.example")',
      });
      // Sec-Fetch-Site alone also marks a browser.
      const fetchSite = await rawWs(port, { headers: { "Sec-Fetch-Site": "cross-site" } });
      assert.equal(fetchSite.upgraded, false);
      assert.match(fetchSite.got.httpAnswer ?? "", /^HTTP\/1\.1 403 .*without an Origin/s);
      // What a browser's page would do: it never gets to say HELLO, so it lists and calls nothing.
      const viaWs = new WebSocket(url, { origin: "https://evil.example" });
      const failure = await new Promise<string>((resolve) => {
        viaWs.on("open", () => resolve("opened"));
        viaWs.on("error", (e) => resolve(e.message));
      });
      assert.equal(failure, "Unexpected server response: 403");
      // Agents and the CLI send no Origin: they work as before.
      const agent = await honestAgent(url);
      const operator = await connectOperator({ server: url });
      assert.deepEqual(
        (await operator.agents()).map((a) => a.name),
        ["honest"],
      );
      await operator.close();
      await agent.close();
      await until(() => server.admission.open === 0, 5000, "every connection to be let go");
    } finally {
      await server.close();
    }
  });

  it("a server with auth upgrades only the origins it allows (--allow-origin)", async () => {
    const { server, port } = await serve({
      standalone: false,
      auth: { key: generateKey() },
      allowedOrigins: ["https://dash.example.com", "http://127.0.0.1:8080"],
    });
    try {
      for (const origin of [
        "https://dash.example.com",
        "HTTPS://Dash.Example.com:443",
        "http://127.0.0.1:8080",
      ]) {
        const ok = await rawWs(port, { headers: { Origin: origin } });
        assert.equal(ok.upgraded, true, origin);
        ok.socket.destroy();
      }
      for (const origin of [
        "https://evil.example",
        "http://dash.example.com",
        "https://dash.example.com:8443",
        "null",
      ]) {
        const refused = await rawWs(port, { headers: { Origin: origin } });
        assert.equal(refused.upgraded, false, origin);
        assert.match(
          refused.got.httpAnswer ?? "",
          new RegExp(
            `^HTTP/1\\.1 403 .*origin \\\\"${origin.replace(/[.]/g, "\\.")}\\\\" is not allowed \\(muster server --allow-origin\\)`,
            "s",
          ),
        );
      }
    } finally {
      await server.close();
    }
  });

  it("allowedOrigins is checked when the server is made, and refused with --standalone", async () => {
    const refused = (o: Partial<ServerOptions>, pattern: RegExp): void => {
      assert.throws(
        () => createServer({ listen: ["ws://127.0.0.1:0"], ...o }),
        (e: MusterError) => e.code === ErrorCode.INVALID_ARGUMENT && pattern.test(e.message),
      );
    };
    refused({ standalone: true, allowedOrigins: ["https://x.example"] }, /standalone has no authentication/);
    const auth = { key: generateKey() };
    for (const bad of [
      "https://x.example/app",
      "x.example",
      "ftp://x.example",
      "https://u@x.example",
      "null",
    ])
      refused({ auth, allowedOrigins: [bad] }, /is not an origin: give scheme:\/\/host\[:port\]/);
    const cli = await runCli([
      "server",
      "--standalone",
      "--allow-origin",
      "https://x.example",
      "--listen",
      "ws://127.0.0.1:0",
    ]);
    assert.equal(cli.code, 2);
    assert.match(cli.err, /--standalone has no authentication: --allow-origin does not go with it/);
  });
});

describe("slowloris on the HTTP/WebSocket port", () => {
  it("half-sent requests count per address and in total, and are answered 408 after the headers timeout", async () => {
    const { server, port, url } = await serve({
      maxConnectionsPerIp: 40,
      maxConnections: 60,
      httpHeadersTimeoutMs: 1000,
      httpRequestTimeoutMs: 2000,
    });
    const agent = await honestAgent(url);
    try {
      const attack = await Promise.all(Array.from({ length: 200 }, () => partialRequest(port)));
      await until(() => attack.filter((p) => p.closed).length >= 160, 10_000, "the excess to be refused");
      const refused = attack.filter((p) => p.answer.startsWith("HTTP/1.1 503"));
      assert.equal(refused.length, 160, "all but 40 refused at once");
      assert.match(refused[0]!.answer, /\r\nRetry-After: \d+\r\n/);
      assert.match(
        refused[0]!.answer,
        /"error":"busy","message":"too many connections from 127\.0\.0\.2 \(limit 40\)"/,
      );
      assert.equal(server.admission.open, 41, "40 half-sent requests and the agent");
      assert.equal(await server.callAgent("honest", "ping"), "pong");
      // The total: another address fills what is left of it, then is refused.
      const second = await Promise.all(Array.from({ length: 25 }, () => partialRequest(port, "127.0.0.3")));
      await until(() => second.filter((p) => p.closed).length >= 6, 10_000, "the total limit to refuse");
      assert.match(second.find((p) => p.closed)!.answer, /server is at its connection limit \(60\)/);
      // The held ones are answered 408 and closed once their headers are late.
      const held = [...attack, ...second].filter((p) => !p.closed);
      assert.equal(held.length, 59);
      await until(() => held.every((p) => p.closed), 20_000, "the held requests to time out");
      assert.ok(
        held.every((p) => p.answer.startsWith("HTTP/1.1 408")),
        "answered 408 Request Timeout",
      );
      await until(() => server.admission.open === 1, 5000, "only the agent to be left");
      assert.equal(await server.callAgent("honest", "ping"), "pong");
      assert.equal(server.admission.refused.max_connections_per_ip, 160);
    } finally {
      await agent.close();
      await server.close();
    }
  });

  it("a WebSocket connection counts once: its HTTP place becomes its transport's", async () => {
    const { server, port } = await serve({ maxConnectionsPerIp: 3, httpHeadersTimeoutMs: 1000 });
    try {
      const peers = await Promise.all([1, 2, 3].map(() => rawWs(port, { localAddress: "127.0.0.2" })));
      assert.ok(peers.every((p) => p.upgraded));
      assert.equal(server.admission.open, 3);
      const fourth = await partialRequest(port);
      await until(() => fourth.closed, 5000, "the fourth connection to be refused");
      assert.match(fourth.answer, /^HTTP\/1\.1 503 .*too many connections from 127\.0\.0\.2 \(limit 3\)/s);
      for (const p of peers) p.socket.destroy();
      await until(() => server.admission.open === 0, 5000, "the places to be freed");
    } finally {
      await server.close();
    }
  });

  it("the separate admin listener has the same timeouts", async () => {
    const server = createServer({
      listen: ["tcp://127.0.0.1:0"],
      standalone: true,
      admin: { listen: "127.0.0.1:0" },
      httpHeadersTimeoutMs: 500,
    });
    await server.start();
    try {
      const p = await partialRequest(Number(new URL(server.adminUrl!).port));
      await until(() => p.closed, 10_000, "the half-sent admin request to time out");
      assert.match(p.answer, /^HTTP\/1\.1 408/);
    } finally {
      await server.close();
    }
  });

  it("on wss:// a connection that never starts its TLS handshake is closed after the headers timeout", {
    skip: !hasOpenssl && "needs openssl",
  }, async () => {
    const pem = makeCertificates(mkdtempSync(join(tmpdir(), "muster-net-")));
    const server = createServer({
      listen: ["wss://127.0.0.1:0"],
      tls: pem.server,
      standalone: true,
      httpHeadersTimeoutMs: 500,
      maxConnectionsPerIp: 5,
    });
    await server.start();
    try {
      const port = server.listeners[0]!.port;
      const silent = await Promise.all(
        Array.from({ length: 8 }, () => partialRequest(port, "127.0.0.2", "")),
      );
      // Over TLS nothing can be said before the handshake: the excess is closed at once.
      await until(() => silent.filter((p) => p.closed).length >= 3, 5000, "the excess to be closed");
      assert.equal(server.admission.open, 5);
      await until(() => silent.every((p) => p.closed), 10_000, "the silent ones to be closed");
      await until(() => server.admission.open === 0, 5000, "their places to be freed");
      // An agent over wss:// counts once, as its transport, once its TLS connection is upgraded.
      const agent = createAgent({
        name: "tls-agent",
        servers: [`wss://127.0.0.1:${port}`],
        tls: { ca: pem.ca.cert },
        reconnect: quickReconnect,
      });
      agent.start();
      await agent.connected();
      assert.equal(server.admission.open, 1);
      await agent.close();
    } finally {
      await server.close();
    }
  });

  it("the timeouts are checked when the server is made", () => {
    assert.throws(
      () => createServer({ standalone: true, httpHeadersTimeoutMs: 40_000 }),
      /httpHeadersTimeoutMs \(40000\) must not be above httpRequestTimeoutMs \(30000\)/,
    );
    assert.throws(
      () => createServer({ standalone: true, httpRequestTimeoutMs: 0 }),
      /httpRequestTimeoutMs must be a number ≥ 1/,
    );
  });
});

describe("per-address limits across address forms", () => {
  it("IPv4-mapped IPv6 counts as IPv4 (one client on two listeners); ::1 is another client", async () => {
    const server = createServer({
      listen: ["tcp://127.0.0.1:0", "ws://[::]:0", "tcp://[::]:0"],
      standalone: true,
      maxConnectionsPerIp: 2,
    });
    await server.start();
    try {
      const [v4only, dualWs, dualTcp] = server.listeners.map((l) => l.port) as [number, number, number];
      // 127.0.0.1 on the IPv4 listener, ::ffff:127.0.0.1 on the dual-stack ones: one client.
      const a = await rawTcp(v4only);
      const b = await rawWs(dualWs);
      assert.equal(b.upgraded, true);
      await until(() => server.admission.open === 2, 5000, "two admitted");
      const c = await rawTcp(dualTcp);
      await until(() => c.got.closed, 5000, "the third from 127.0.0.1 to be refused");
      const close = c.got.frames[0];
      assert.equal(
        close?.type === FrameType.CLOSE && close.close.message,
        "too many connections from 127.0.0.1 (limit 2)",
      );
      const v6 = await rawTcp(dualTcp, { host: "::1" });
      await until(() => server.admission.open === 3, 5000, "::1 to be admitted");
      assert.equal(v6.got.closed, false);
      for (const s of [a.socket, b.socket, v6.socket]) s.destroy();
    } finally {
      await server.close();
    }
  });
});
