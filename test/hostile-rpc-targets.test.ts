// Hostile targets over real TCP: an operator whose token grants only sys.ping sends globs built
// to make a backtracking matcher run for ever, an overlong target, and selectors naming
// Object.prototype members. The server answers each at once and precisely, and honest calls
// go on meanwhile. No operator may call the agents' built-ins.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createAgent, type MusterAgent } from "../src/agent/create-agent.js";
import { generateKey } from "../src/auth/keys.js";
import { issueToken } from "../src/auth/tokens.js";
import type { MusterError } from "../src/errors/muster-error.js";
import { DEFAULTS } from "../src/internal/defaults.js";
import { connectOperator, type MusterOperator } from "../src/operator/create-operator.js";
import { createServer, type MusterServer } from "../src/server/create-server.js";
import { quickReconnect } from "./support/fleet.js";

const key = generateKey();
// Eight characters: enough for a backtracking matcher to spend seconds on each.
const NAMES = ["web-0001", "web-0002"];

describe("hostile targets", () => {
  let server: MusterServer;
  let op: MusterOperator;
  let operatorToken: string;
  const agents: MusterAgent[] = [];
  before(async () => {
    server = createServer({
      listen: ["tcp://127.0.0.1:0"],
      auth: { key },
      admin: { listen: "127.0.0.1:0" },
    });
    await server.start();
    const url = server.listeners[0]!.url;
    for (const name of NAMES) {
      const token = await issueToken(key, { role: "agent", subject: name, labels: { role: "web" } });
      const a = createAgent({
        name,
        labels: { role: "web" },
        servers: [url],
        token,
        reconnect: quickReconnect,
      });
      agents.push(a);
      a.start();
      await a.connected();
    }
    // The weakest operator there is: it may relay sys.ping and nothing else.
    operatorToken = await issueToken(key, { role: "operator", subject: "mallory", methods: ["sys.ping"] });
    op = await connectOperator({ server: url, token: operatorToken });
  });
  after(async () => {
    await op.close();
    await Promise.all(agents.map((a) => a.close()));
    await server.close();
  });

  const expectedOf = async (target: string): Promise<string[]> => {
    const call = op.call(target, "sys.ping", undefined, { timeoutMs: 5000 });
    await call.done;
    return [...(await call.expected)].sort();
  };

  it("label selectors read the agents' own labels only, never Object.prototype", async () => {
    for (const k of ["constructor", "toString", "valueOf", "hasOwnProperty", "isPrototypeOf"]) {
      assert.deepEqual(await expectedOf(`${k}=*`), [], `${k}=* matches no agent`);
      assert.deepEqual(await expectedOf(`!${k}`), NAMES, `!${k} matches every agent`);
      assert.deepEqual(await expectedOf(`${k}!=x`), NAMES, `${k}!=x matches every agent`);
    }
    assert.deepEqual(await expectedOf("role=web"), NAMES, "a real label still selects");
  });

  it("refuses ?state=constructor (and other prototype names) on /api/agents with 400", async () => {
    for (const state of ["constructor", "toString", "__proto__", "hasOwnProperty"]) {
      const r = await fetch(`${server.adminUrl}/api/agents?state=${state}`, {
        headers: { authorization: `Bearer ${operatorToken}` },
      });
      assert.equal(r.status, 400, `state=${state}`);
      assert.match(await r.text(), /is not one of connected, suspect, resuming, pending, offline/);
    }
  });

  it("an operator cannot call an agent's built-ins (muster.servers would send agents and their tokens to any host)", async () => {
    // An operator with every grant: its relays reach any method of the agents but these.
    const full = await connectOperator({
      server: server.listeners[0]!.url,
      token: await issueToken(key, { role: "operator", subject: "trent" }),
    });
    try {
      const before = agents.map((a) => a.servers.map((x) => x.url));
      for (const method of ["muster.servers", "muster.config", "muster.text"]) {
        const call = full.call("all", method, { servers: [{ name: "evil", urls: ["tcp://203.0.113.9:1"] }] });
        await assert.rejects(
          call.done,
          (e: MusterError) =>
            e.code === "PERMISSION_DENIED" && e.rawMessage.includes(`${method} is an agent's built-in`),
          method,
        );
      }
      assert.deepEqual(
        agents.map((a) => a.servers.map((x) => x.url)),
        before,
        "no agent's server list changed",
      );
      // Nor open an agent's built-in stream (a run's start, which would run its stage).
      const agentName = agents[0]!.name;
      const s = full.stream(agentName, "muster.run.start", { run: "r1", stage: 0 });
      await assert.rejects(
        (async () => {
          for await (const _ of s);
        })(),
        (e: MusterError) =>
          e.code === "PERMISSION_DENIED" && e.rawMessage.includes("muster.run.start is an agent's built-in"),
      );
      // The same operator's honest relay goes through.
      const ok = await full.call("all", "sys.ping", undefined, { timeoutMs: 5000 }).done;
      assert.equal(ok.summary.ok, NAMES.length);
    } finally {
      await full.close();
    }
  });

  it("refuses a target over maxTargetBytes with INVALID_ARGUMENT naming the limit", async () => {
    const long = NAMES.join(",").padEnd(DEFAULTS.maxTargetBytes + 1, ",web-0001");
    const call = op.call(long, "sys.ping");
    await assert.rejects(
      call.done,
      (e: MusterError) =>
        e.code === "INVALID_ARGUMENT" &&
        e.rawMessage.includes(`${DEFAULTS.maxTargetBytes + 1} bytes`) &&
        e.rawMessage.includes(`${DEFAULTS.maxTargetBytes}`),
    );
  });

  it("matches a glob of 40 stars and Z at once, and answers honest calls meanwhile", async (t) => {
    // The longest the event loop went without running a 10 ms ticker: a freeze shows here.
    let last = performance.now();
    let longestGapMs = 0;
    const ticker = setInterval(() => {
      const now = performance.now();
      longestGapMs = Math.max(longestGapMs, now - last);
      last = now;
    }, 10);
    try {
      const started = performance.now();
      const honest = op.call("all", "sys.ping", undefined, { timeoutMs: 5000 });
      for (const glob of ["*".repeat(40) + "Z", "*?".repeat(20) + "Z", "w*".repeat(20) + "Z"]) {
        assert.deepEqual(await expectedOf(glob), [], glob);
      }
      const { summary } = await honest.done;
      assert.equal(summary.ok, 2, "the honest fan-out answered");
      const now = performance.now();
      longestGapMs = Math.max(longestGapMs, now - last);
      t.diagnostic(
        `took ${(now - started).toFixed(0)} ms; longest event-loop gap ${longestGapMs.toFixed(0)} ms`,
      );
      assert.ok(longestGapMs < 1000, `the event loop stalled ${longestGapMs.toFixed(0)} ms`);
    } finally {
      clearInterval(ticker);
    }
  });
});
