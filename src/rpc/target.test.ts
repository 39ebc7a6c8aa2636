import assert from "node:assert/strict";
import { it } from "node:test";
import type { MusterError } from "../errors/muster-error.js";
import { formatTarget, matcher, parseTarget } from "./target.js";

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
