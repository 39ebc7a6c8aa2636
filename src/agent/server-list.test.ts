import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { mulberry32 } from "../chaos/prng.js";
import type { WelcomeServers } from "../wire/frame.js";
import { type KnownServer, ServerList, type ServerListOptions } from "./server-list.js";

const A = "tcp://10.0.0.1:33076";
const B = "tcp://10.0.0.2:33076";
const C = "tcp://10.0.0.3:33076";
const D = "tcp://10.0.0.4:33076";

function list(configured: string[], extra: Partial<ServerListOptions> = {}): ServerList {
  return new ServerList({ configured, order: "ordered", ...extra });
}

const urls = (servers: readonly KnownServer[]): string[] => servers.map((s) => s.url);

/** The URLs tried one after the other when every attempt fails, from the first. */
function failures(l: ServerList, attempts: number): string[] {
  let url = l.first().url;
  const seen = [url];
  for (let i = 1; i < attempts; i++) {
    url = l.next(url).url;
    seen.push(url);
  }
  return seen;
}

describe("ServerList: where the first attempt goes", () => {
  it("shuffle spreads the starts of many agents over every configured URL", () => {
    const random = mulberry32(42);
    const starts = new Map<string, number>();
    const agents = 4000;
    for (let i = 0; i < agents; i++) {
      const url = new ServerList({ configured: [A, B, C, D], random }).first().url;
      starts.set(url, (starts.get(url) ?? 0) + 1);
    }
    assert.deepEqual([...starts.keys()].sort(), [A, B, C, D]);
    // A fair start gives each URL a quarter (1000); with this seed each is within 10 % of it.
    for (const [url, n] of starts) assert.ok(n > 900 && n < 1100, `${url}: ${n} of ${agents} starts`);
  });

  it("shuffle also spreads the second choice: the agents of a failed server do not all go to the same one", () => {
    const random = mulberry32(7);
    const second = new Map<string, number>();
    for (let i = 0; i < 3000; i++) {
      const l = new ServerList({ configured: [A, B, C, D], random });
      // The agents that started at A, and found it down.
      if (l.first().url !== A) continue;
      const url = l.next(A).url;
      second.set(url, (second.get(url) ?? 0) + 1);
    }
    assert.deepEqual([...second.keys()].sort(), [B, C, D]);
    const counts = [...second.values()];
    assert.ok(Math.min(...counts) > 0.8 * Math.max(...counts), `second choices ${counts}`);
  });

  it("the shuffle is the injected random source's: a fixed source, a fixed order", () => {
    // Fisher-Yates from the end: random 0 swaps each place with the first.
    const l = new ServerList({ configured: [A, B, C], random: () => 0 });
    assert.deepEqual(urls(l.servers), [B, C, A]);
    assert.match(l.first().why, /random start among 3 configured servers/);
  });

  it("ordered: servers[0] first, then in turn, round after round (the behaviour before shuffle)", () => {
    const l = list([A, B, C]);
    assert.deepEqual(l.first(), { url: A, why: "the first configured server" });
    assert.deepEqual(failures(l, 7), [A, B, C, A, B, C, A]);
  });

  it("one URL: it, whatever the order, and again after a failure", () => {
    const l = new ServerList({ configured: [A], random: () => 0.99 });
    assert.deepEqual(l.first(), { url: A, why: "the only configured server" });
    assert.equal(l.next(A).url, A);
  });

  it("a URL given twice is one server; an unparseable one stays (the dial will say what is wrong)", () => {
    assert.deepEqual(urls(list([A, A, "tcp://10.0.0.1:33076", "not a url"]).servers), [A, "not a url"]);
    assert.throws(() => list([]), RangeError);
  });
});

describe("ServerList: after a drop, a failure, a shutdown", () => {
  it("a dropped link resumes on the previous server first, then moves on from it", () => {
    const l = list([A, B, C]);
    l.connected(B);
    assert.deepEqual(l.resume(), { url: B, why: "the previous server first, to resume the session there" });
    assert.equal(l.next(B).url, C);
    assert.equal(l.next(C).url, A);
  });

  it("before any connection, resume() is the first server", () => {
    assert.equal(list([A, B]).resume().url, A);
  });

  it("what failed since the last connection is not tried again before the others; a new round after", () => {
    const l = list([A, B, C]);
    assert.equal(l.next(A).url, B);
    assert.equal(l.next(B).url, C);
    const round = l.next(C);
    assert.equal(round.url, A);
    assert.match(round.why, /every server tried, a new round/);
    // A connection forgets the failures: from B, C is next again.
    l.connected(A);
    assert.equal(l.next(A).url, B);
  });

  it("a server that said it shuts down is skipped until a WELCOME says otherwise", () => {
    const l = list([A, B, C]);
    l.connected(A);
    l.draining(A);
    assert.equal(l.servers[0]!.state, "draining");
    assert.equal(l.next(A).url, B);
    assert.equal(l.next(B).url, C);
    // C fails too: a new round, still without the draining A.
    assert.equal(l.next(C).url, B);
    l.learn(undefined, B, "b");
    assert.equal(l.servers[0]!.state, undefined, "a WELCOME replaces what was known");
  });
});

describe("ServerList: what a WELCOME announces", () => {
  const cluster: WelcomeServers = [
    { name: "a", urls: ["ws://10.0.0.1:33075", A], load: 5, state: "ready" },
    { name: "b", urls: [B, "wss://b.example:33075"], load: 1 },
    { name: "c", urls: [C], load: 0, state: "draining" },
    { name: "d", urls: ["ws://10.0.0.4:33075", D], load: 9 },
  ];

  it("learned servers follow the configured ones, one URL each, of the scheme in use", () => {
    const l = list([A]);
    const r = l.learn(cluster, A, "a");
    assert.deepEqual(r, { learned: 3, matchedConfigured: 1, unusable: [] });
    assert.deepEqual(l.servers, [
      { url: A, source: "configured", name: "a", load: 5, state: "ready" },
      { url: B, source: "learned", name: "b", load: 1 },
      { url: C, source: "learned", name: "c", load: 0, state: "draining" },
      { url: D, source: "learned", name: "d", load: 9 },
    ]);
    assert.ok(Object.isFrozen(l.servers) && Object.isFrozen(l.servers[0]));
  });

  it("each WELCOME replaces the learned servers; configured ones are never forgotten", () => {
    const l = list([A, "tcp://lb.example:33076"]);
    l.learn(cluster, A, "a");
    assert.equal(l.servers.length, 5);
    l.learn([{ name: "e", urls: ["tcp://10.0.0.5:33076"] }], A, "a");
    assert.deepEqual(l.servers, [
      { url: A, source: "configured" },
      { url: "tcp://lb.example:33076", source: "configured" },
      { url: "tcp://10.0.0.5:33076", source: "learned", name: "e" },
    ]);
    l.learn(undefined, A, "a");
    assert.deepEqual(urls(l.servers), [A, "tcp://lb.example:33076"]);
    l.learn([], A, "a");
    assert.deepEqual(urls(l.servers), [A, "tcp://lb.example:33076"]);
  });

  it("moving on: draining servers skipped, the least loaded first (ordered)", () => {
    const l = list([A]);
    l.learn(cluster, A, "a");
    l.connected(A);
    const pick = l.next(A);
    assert.deepEqual(pick, { url: B, why: "the least loaded server not yet tried (load 1)" });
    assert.equal(l.next(B).url, D, "c drains: d");
    // Every ready server failed: a new round without the draining c.
    assert.equal(l.next(D).url, B);
  });

  it("only draining servers left: they are tried rather than nothing", () => {
    const l = list([A]);
    l.learn(
      [
        { name: "a", urls: [A] },
        { name: "b", urls: [B], state: "draining" },
      ],
      A,
      "a",
    );
    const pick = l.next(A);
    assert.equal(pick.url, B);
    assert.match(pick.why, /only draining servers are left/);
  });

  it("shuffle: of two servers one weighted by load; of three the less loaded of two random ones, never the most loaded", () => {
    const random = mulberry32(3);
    const picks = new Map<string, number>();
    for (let i = 0; i < 600; i++) {
      const l = new ServerList({ configured: [A], random });
      l.learn(cluster, A, "a");
      l.connected(A);
      const pick = l.next(A);
      assert.match(pick.why, /one of two servers, picked at random weighted by load/);
      picks.set(pick.url, (picks.get(pick.url) ?? 0) + 1);
    }
    // Ready and untried: b (load 1) and d (load 9); c drains. Two choices of two would always
    // be b: each is picked with a chance falling with its load, b 10/12, d 2/12 (about 500 / 100).
    const b = picks.get(B) ?? 0;
    assert.ok(b > 440 && b < 560 && b + (picks.get(D) ?? 0) === 600, [...picks].join());

    const three: WelcomeServers = [
      { name: "x", urls: ["tcp://x:1"], load: 1 },
      { name: "y", urls: ["tcp://y:1"], load: 2 },
      { name: "z", urls: ["tcp://z:1"], load: 3 },
    ];
    const spread = new Map<string, number>();
    for (let i = 0; i < 600; i++) {
      const l = new ServerList({ configured: [A], random });
      l.learn(three, A, "a");
      const url = l.next(A).url;
      spread.set(url, (spread.get(url) ?? 0) + 1);
    }
    // x wins 2 pairs of 3, y 1, z none: about 400 / 200 / 0.
    assert.equal(spread.get("tcp://z:1"), undefined);
    assert.ok(
      (spread.get("tcp://x:1") ?? 0) > 330 && (spread.get("tcp://y:1") ?? 0) > 130,
      [...spread].join(),
    );
  });

  it("servers with a known load come before URLs without one; those go in list order", () => {
    const l = list([A, B]);
    l.learn([{ name: "c", urls: [C], load: 50 }], A, "a");
    assert.equal(l.next(A).url, C);
    assert.equal(l.next(C).url, B);
  });

  it("a configured URL that reaches an announced server takes its name, load and state", () => {
    const l = list([A, C]);
    l.learn(cluster, A, "a");
    assert.deepEqual(l.servers.slice(0, 2), [
      { url: A, source: "configured", name: "a", load: 5, state: "ready" },
      { url: C, source: "configured", name: "c", load: 0, state: "draining" },
    ]);
    assert.equal(l.servers.length, 4, "b and d learned; c not twice");
  });

  it("the server of the link is reached at the URL in use, and its other URLs are not tried after it", () => {
    // Configured: a load balancer; behind it this time, server a, which announces its own address.
    const lb = "tcp://lb.example:33076";
    const l = list([lb]);
    l.learn(
      [
        { name: "a", urls: [A] },
        { name: "b", urls: [B] },
      ],
      lb,
      "a",
    );
    l.connected(lb);
    assert.deepEqual(l.servers, [
      { url: lb, source: "configured", name: "a" },
      { url: B, source: "learned", name: "b" },
    ]);
    assert.equal(l.next(lb).url, B);
  });

  it("scheme: the one in use first, then the same security; a secure link takes no plain URL", () => {
    const both: WelcomeServers = [
      { name: "b", urls: ["ws://b:33075", "wss://b:33075", "tls://b:33076", "tcp://b:33076"] },
      { name: "c", urls: ["ws://c:33075", "tcp://c:33076"] },
      { name: "d", urls: ["tls://d:33076", "ws://d:33075"] },
    ];
    const onTcp = list(["tcp://a:33076"]);
    onTcp.learn(both, "tcp://a:33076", "a");
    assert.deepEqual(urls(onTcp.servers).slice(1), ["tcp://b:33076", "tcp://c:33076", "ws://d:33075"]);
    const onWss = list(["wss://a:33075"]);
    const r = onWss.learn(both, "wss://a:33075", "a");
    assert.deepEqual(urls(onWss.servers).slice(1), ["wss://b:33075", "tls://d:33076"]);
    assert.deepEqual(r.unusable, ["c"]);
  });

  it("URLs this dialer cannot dial, cannot parse, or that carry credentials are not taken", () => {
    const l = list([A]);
    const r = l.learn(
      [
        { name: "m", urls: ["memory://m"] },
        { name: "h", urls: ["ftp://h:21", "unix:/run/muster.sock"] },
        { name: "bad", urls: ["::not a url::"] },
        { name: "cred", urls: ["tcp://user:secret@10.0.0.9:33076"] },
        { name: "ok", urls: ["memory://ok", B] },
      ],
      A,
      "a",
    );
    assert.deepEqual(r.unusable, ["m", "h", "bad", "cred"]);
    assert.deepEqual(urls(l.servers), [A, B]);
    const mem = list(["memory://a"], { canDial: (p) => p === "memory:" });
    mem.learn([{ name: "m", urls: ["memory://M", "tcp://m:1"] }], "memory://a", "a");
    assert.deepEqual(urls(mem.servers), ["memory://a", "memory://M"]);
  });

  it("learned servers are shuffled with the configured ones' source; ordered keeps the announced order", () => {
    const many: WelcomeServers = Array.from({ length: 8 }, (_, i) => ({
      name: `s${i}`,
      urls: [`tcp://s${i}:1`],
    }));
    const ordered = list([A]);
    ordered.learn(many, A, "a");
    assert.deepEqual(
      urls(ordered.servers).slice(1),
      many.map((s) => s.urls[0]),
    );
    const firsts = new Set<string>();
    const random = mulberry32(11);
    for (let i = 0; i < 50; i++) {
      const l = new ServerList({ configured: [A], random });
      l.learn(many, A, "a");
      firsts.add(l.servers[1]!.url);
    }
    assert.ok(firsts.size >= 6, `learned heads: ${[...firsts].join(" ")}`);
  });
});
