// The short fuzz run: a fixed seed over the frame decoder, the length-prefix decoder and the
// handshake of a real server, plus every regression fixture of test/fixtures/fuzz/. The long
// run is `npm run fuzz` (fuzz/main.ts).

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { runHandshakeFuzz } from "../fuzz/handshake.js";
import { runAuthHandshakeFuzz } from "../fuzz/handshake-auth.js";
import { type Failure, loadFixtures, replayFixture, runDecoderFuzz } from "../fuzz/run.js";
import { TARGETS } from "../fuzz/targets.js";
import { FrameType } from "../src/wire/frame.js";

const SEED = 0x6d757374; // "must"
const DECODER_INPUTS = 15_000;
const HANDSHAKES = 40;
const AUTH_HANDSHAKES = 120;

console.log(
  `fuzz seed ${SEED} (${DECODER_INPUTS} decoder inputs, ${HANDSHAKES} handshakes, ${AUTH_HANDSHAKES} authenticated)`,
);

function report(failures: Failure[]): string {
  return failures
    .slice(0, 10)
    .map((f) => `${f.target}: ${f.message} (input ${Buffer.from(f.input).toString("hex").slice(0, 80)}…)`)
    .join("\n");
}

describe(`fuzz, seed ${SEED}`, () => {
  it(`decodeFrame, decodeValue and LengthPrefixDecoder: ${DECODER_INPUTS} inputs`, () => {
    const failures: Failure[] = [];
    const stats = runDecoderFuzz({ seed: SEED, end: DECODER_INPUTS, onFailure: (f) => failures.push(f) });
    assert.equal(failures.length, 0, `${failures.length} failing inputs:\n${report(failures)}`);
    // The inputs reached every outcome: none of this passes by exercising nothing.
    assert.equal(stats.inputs, DECODER_INPUTS);
    for (const name of Object.keys(FrameType)) {
      assert.ok(stats.decode.decoded[name]! > 0, `no ${name} frame decoded`);
    }
    assert.ok(stats.decode.rejected > DECODER_INPUTS / 10, `${stats.decode.rejected} rejected`);
    assert.ok(stats.decode.values > 100 && stats.decode.valuesRejected > 100, JSON.stringify(stats.decode));
    const s = stats.stream;
    assert.equal(s.streams, DECODER_INPUTS);
    assert.ok(s.frames > 0 && s.tooLarge > 0 && s.tooShort > 0 && s.partial > 0, JSON.stringify(s));
  });

  it("replays every regression fixture of test/fixtures/fuzz/", async () => {
    const fixtures = loadFixtures();
    assert.ok(fixtures.length > 0, "test/fixtures/fuzz/ holds no fixture");
    const byTarget = new Map(TARGETS.map((t) => [t, 0]));
    for (const f of fixtures) byTarget.set(f.target, byTarget.get(f.target)! + 1);
    assert.ok(byTarget.get("decode")! > 0 && byTarget.get("stream")! > 0, JSON.stringify([...byTarget]));
    for (const fixture of fixtures) {
      assert.ok(fixture.note.length > 0, `${fixture.file}: the .txt note is missing`);
      if (fixture.target === "handshake" || fixture.target === "auth") continue; // below, against a real server
      assert.equal(replayFixture(fixture), undefined, `${fixture.file} (${fixture.note})`);
    }
  });

  it(`handshake: ${HANDSHAKES} generated connections and the handshake fixtures, on a real server`, async () => {
    const fixtures = loadFixtures().filter((f) => f.target === "handshake");
    const failures: Failure[] = [];
    const stats = await runHandshakeFuzz({
      seed: SEED,
      connections: HANDSHAKES,
      extra: fixtures.map((f) => f.input),
      onFailure: (f) => failures.push(f),
    });
    assert.equal(failures.length, 0, `${failures.length} failures:\n${report(failures)}`);
    assert.equal(stats.connections, HANDSHAKES + fixtures.length);
    assert.ok(stats.welcomed > 0, "no HELLO was welcomed");
    assert.ok(stats.closedWithFrame > 0, "no connection was closed with CLOSE");
    assert.ok(stats.closedClean > 0, "no connection was closed without a frame");
    assert.ok(stats.controlCalls >= Math.ceil(stats.connections / 8), `${stats.controlCalls} control calls`);
  });

  it(`authenticated handshake: ${AUTH_HANDSHAKES} connections with tokens of every kind and enrolment ids, and the auth fixtures`, async () => {
    const fixtures = loadFixtures().filter((f) => f.target === "auth");
    const failures: Failure[] = [];
    const stats = await runAuthHandshakeFuzz({
      seed: SEED,
      connections: AUTH_HANDSHAKES,
      extra: fixtures.map((f) => f.input),
      onFailure: (f) => failures.push(f),
    });
    assert.equal(failures.length, 0, `${failures.length} failures:\n${report(failures)}`);
    assert.equal(stats.connections, AUTH_HANDSHAKES + fixtures.length);
    // Every outcome was reached: none of this passes by exercising nothing.
    assert.ok(stats.welcomed > 0, "no valid credential was welcomed");
    for (const code of ["unauthenticated", "rejected", "pending", "protocol_error"])
      assert.ok((stats.closed[code] ?? 0) > 0, `no CLOSE ${code}: ${JSON.stringify(stats.closed)}`);
    assert.ok(stats.controlCalls >= Math.ceil(stats.connections / 8), `${stats.controlCalls} control calls`);
  });
});
