import assert from "node:assert/strict";
import { it } from "node:test";
import type { MusterError } from "../errors/muster-error.js";
import { DEFAULTS } from "../internal/defaults.js";
import { formatTarget, globMatcher, globToRegExp, matcher, parseTarget } from "./target.js";

const agents: { name: string; labels: Record<string, string> }[] = [
  { name: "web-1", labels: { role: "web", zone: "eu" } },
  { name: "web-2", labels: { role: "web", zone: "us" } },
  { name: "db-1", labels: { role: "db", gpu: "yes" } },
];
const pick = (t: string): string[] => agents.filter(matcher(parseTarget(t))).map((a) => a.name);

it("parses every target form and matches the right agents", () => {
  assert.equal(parseTarget("all"), "all");
  assert.equal(parseTarget("*"), "all");
  assert.deepEqual(parseTarget("web-1, db-1"), { names: ["web-1", "db-1"] });
  assert.deepEqual(pick("web-*"), ["web-1", "web-2"]);
  assert.deepEqual(pick("db-?"), ["db-1"]);
  assert.deepEqual(pick("role=web"), ["web-1", "web-2"]);
  assert.deepEqual(pick("role=web,zone!=eu"), ["web-2"]);
  assert.deepEqual(pick("gpu=*"), ["db-1"]);
  assert.deepEqual(pick("role=db,!zone"), ["db-1"]);
  assert.deepEqual(pick("!gpu"), ["web-1", "web-2"]);
  assert.deepEqual(pick("all"), ["web-1", "web-2", "db-1"]);
});

it("round-trips through formatTarget", () => {
  for (const t of ["all", "web-1,db-1", "web-*", "role=web,zone!=eu,gpu=*,!spot"]) {
    assert.equal(formatTarget(parseTarget(t)), t);
  }
});

it("rejects malformed targets with INVALID_ARGUMENT and a reason", () => {
  for (const [bad, why] of [
    ["", /empty target/],
    ["bad name!", /name/],
    ["web-*,db-1", /glob cannot be combined/],
    ["web-[1]", /name/],
    ["=web", /use key=value/],
    ["ro le=web", /invalid label key/],
    ["role=web,gpu", /use key=value/],
  ] as const) {
    assert.throws(
      () => parseTarget(bad),
      (e: MusterError) => e.code === "INVALID_ARGUMENT" && why.test(e.message),
      bad,
    );
  }
});

it("matches globs as a regular expression would, without backtracking", () => {
  // Every glob over a small alphabet against every short string, checked against the regex.
  const alphabet = ["a", "b", "*", "?"];
  const globs: string[] = [""];
  for (let len = 1; len <= 4; len++) {
    for (const g of globs.filter((x) => x.length === len - 1)) for (const c of alphabet) globs.push(g + c);
  }
  const strings: string[] = [""];
  for (let len = 1; len <= 5; len++) {
    for (const x of strings.filter((y) => y.length === len - 1)) for (const c of "ab") strings.push(x + c);
  }
  for (const g of globs) {
    const re = globToRegExp(g);
    const match = globMatcher(g);
    for (const s of strings)
      assert.equal(match(s), re.test(s), `${JSON.stringify(g)} on ${JSON.stringify(s)}`);
  }
});

it("matches a 10,000-character hostile glob against 10,000 agents in well under a second", () => {
  const names = Array.from({ length: 10_000 }, (_, i) => `${"a".repeat(120)}-${i}`);
  const hostile = [
    `${"*".repeat(9_999)}Z`,
    `${"*a".repeat(4_999)}*Z`,
    `${"*".repeat(77)}a`.repeat(127) + "*Z",
    `${"a?*".repeat(3_333)}Z`,
    `${"*?".repeat(4_999)}*Z`,
    `${"*".repeat(4_900)}${"a?".repeat(60)}b${"*".repeat(4_900)}`,
  ];
  for (const glob of hostile) {
    assert.ok(glob.length > 9_900 && glob.length <= 10_001, `${glob.length} characters`);
    const started = performance.now();
    const match = matcher(parseTarget(glob));
    const picked = names.filter((name) => match({ name, labels: {} }));
    const tookMs = performance.now() - started;
    assert.deepEqual(picked, []);
    assert.ok(tookMs < 1000, `${glob.slice(0, 12)}…: ${tookMs.toFixed(0)} ms`);
  }
  // Collapsed stars still match what they should.
  assert.deepEqual(pick("**we*b**-*1"), ["web-1"]);
  assert.deepEqual(parseTarget("web-**"), { glob: "web-*" });
  assert.equal(parseTarget("***"), "all");
});

it("refuses a target longer than the limit, counting UTF-8 bytes", () => {
  const over = (t: string, max?: number) =>
    assert.throws(
      () => parseTarget(t, max),
      (e: MusterError) =>
        e.code === "INVALID_ARGUMENT" && /more than the limit of \d+ \(maxTargetBytes\)/.test(e.message),
    );
  over("a".repeat(DEFAULTS.maxTargetBytes + 1));
  over("é".repeat(6), 11);
  assert.deepEqual(parseTarget("a".repeat(100), 100), { names: ["a".repeat(100)] });
  assert.match(
    (() => {
      try {
        parseTarget("x".repeat(20_000));
      } catch (e) {
        return (e as MusterError).message;
      }
      return "";
    })(),
    /target is at least 20000 bytes/,
  );
});

it("reads only an agent's own labels: Object.prototype names are no labels", () => {
  for (const k of ["constructor", "toString", "valueOf", "hasOwnProperty"]) {
    assert.deepEqual(pick(`${k}=*`), [], `${k}=*`);
    assert.deepEqual(pick(`!${k}`), ["web-1", "web-2", "db-1"], `!${k}`);
  }
  const odd = [
    { name: "x", labels: JSON.parse('{"__proto__":"p","constructor":"c"}') as Record<string, string> },
  ];
  assert.equal(odd.filter(matcher(parseTarget("constructor=c"))).length, 1, "a real label by that name");
});
