import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { fromJSON, loadSync, type PackageDefinition } from "@grpc/proto-loader";
import { parseStatefulCommand, parseStatelessCommand, parseUuid } from "./commands.js";
import { COMMS_DESCRIPTOR, LOADER_OPTIONS } from "./proto.js";
import { checksumUpTo, type ResumeState, resolveResume } from "./resume.js";
import {
  addToChecksum,
  CHECKSUM_MOD,
  checksumAt,
  firstStatelessValue,
  MAX_UINT64,
  nextStatelessValue,
  removeFromChecksum,
  sessionSeed,
  valueAt,
} from "./sequence.js";

const TEST_UUID = "a17417a0-aa39-40b5-8675-247713cc4908";
const M64 = (1n << 64n) - 1n;

/** SplitMix64 as usually written: a generator stepped one value at a time. */
function* splitmix64(state: bigint): Generator<number> {
  let s = state;
  for (;;) {
    s = (s + 0x9e3779b97f4a7c15n) & M64;
    let z = s;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M64;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M64;
    yield Number((z ^ (z >> 31n)) >> 32n);
  }
}

describe("numbers: the stateful sequence", () => {
  it("value k computed directly equals the k-th value of the generator stepped k times", () => {
    for (const uuid of [
      TEST_UUID,
      "00000000-0000-0000-0000-000000000000",
      "ffffffff-ffff-4fff-bfff-ffffffffffff",
    ]) {
      const seed = sessionSeed(uuid);
      const gen = splitmix64(seed);
      for (let k = 1; k <= 2000; k++) assert.equal(valueAt(seed, k), gen.next().value, `${uuid} value ${k}`);
    }
  });

  it("seeks: a far position costs no more than the first, and matches stepping", () => {
    const seed = sessionSeed(TEST_UUID);
    const gen = splitmix64(seed);
    let v = 0;
    for (let k = 1; k <= 65535; k++) v = gen.next().value;
    assert.equal(valueAt(seed, 65535), v);
  });

  it("keeps its golden values, so sessions stored by an earlier version still resume", () => {
    const seed = sessionSeed(TEST_UUID);
    assert.deepEqual(
      [1, 2, 3, 4, 5].map((k) => valueAt(seed, k)),
      [2802775422, 1065590150, 2173132289, 3593556733, 40681751],
    );
    assert.equal(checksumAt(seed, 5), 119257);
  });

  it("gives uint32 values, the same for the same uuid in any case, different for another uuid", () => {
    const a = sessionSeed(TEST_UUID);
    assert.equal(sessionSeed(TEST_UUID.toUpperCase().toLowerCase()), a);
    const b = sessionSeed("a17417a0-aa39-40b5-8675-247713cc4909");
    let same = 0;
    for (let k = 1; k <= 1000; k++) {
      const v = valueAt(a, k);
      assert.ok(Number.isInteger(v) && v >= 0 && v <= 0xffff_ffff);
      if (v === valueAt(b, k)) same++;
    }
    assert.equal(same, 0, "uuids differing in the last bit share no values");
    assert.throws(() => valueAt(a, 0), /position must be an integer ≥ 1/);
    assert.throws(() => sessionSeed("not-a-uuid"), /not a canonical uuid/);
  });
});

describe("numbers: the checksum", () => {
  it("follows the seed's rule c = (c + (x mod 123456)) mod 123456", () => {
    assert.equal(CHECKSUM_MOD, 123456);
    assert.equal(addToChecksum(0, 123456), 0);
    assert.equal(addToChecksum(123455, 123457), 0);
    assert.equal(addToChecksum(5, 0xffff_ffff), (5 + (0xffff_ffff % 123456)) % 123456);
    const seed = sessionSeed(TEST_UUID);
    let c = 0;
    for (let k = 1; k <= 300; k++) {
      const x = valueAt(seed, k);
      c = (c + (x % 123456)) % 123456;
      assert.equal(checksumAt(seed, k), c);
      assert.equal(removeFromChecksum(addToChecksum(c, x), x), c);
    }
  });

  it("up to any position, walking from the nearer end", () => {
    const seed = sessionSeed(TEST_UUID);
    const state: ResumeState = { n: 400, sentCount: 300, checksum: checksumAt(seed, 300) };
    for (const p of [0, 1, 2, 149, 150, 151, 299, 300])
      assert.equal(
        checksumUpTo(state, (k) => valueAt(seed, k), p),
        checksumAt(seed, p),
        `position ${p}`,
      );
  });
});

describe("numbers: the stateless sequence", () => {
  it("multiplies by 3 with uint64 wrap-around, exactly", () => {
    assert.equal(nextStatelessValue(5n), 15n);
    assert.equal(nextStatelessValue(MAX_UINT64), MAX_UINT64 - 2n);
    assert.equal(nextStatelessValue(1n << 63n), 1n << 63n);
    let x = 200n;
    for (let i = 0; i < 100; i++) x = nextStatelessValue(x);
    assert.equal(x, BigInt.asUintN(64, 200n * 3n ** 100n));
    // 3 is odd, so a value ≥ 1 never becomes 0.
    assert.notEqual(x, 0n);
  });

  it("starts from 1..255", () => {
    assert.equal(
      firstStatelessValue(() => 0),
      1n,
    );
    assert.equal(
      firstStatelessValue(() => 0.999999),
      255n,
    );
    for (let i = 0; i < 200; i++) {
      const v = firstStatelessValue();
      assert.ok(v >= 1n && v <= 255n, String(v));
    }
  });
});

describe("numbers: commands", () => {
  it("accepts the uuid plain, quoted, or wrapped in any one pair of characters", () => {
    for (const text of [TEST_UUID, `"${TEST_UUID}"`, `{${TEST_UUID}}`, `'${TEST_UUID}'`, `x${TEST_UUID}y`])
      assert.equal(parseUuid(text), TEST_UUID, text);
    assert.equal(parseUuid(TEST_UUID.toUpperCase()), TEST_UUID);
    for (const text of [
      `"${TEST_UUID}`,
      `""${TEST_UUID}""`,
      TEST_UUID.replaceAll("-", ""),
      `${TEST_UUID.slice(0, 35)}g`,
    ])
      assert.equal(parseUuid(text), undefined, text);
  });

  it("parses the stateful commands, the seed's client's quoted START included", () => {
    assert.deepEqual(parseStatefulCommand(`START "${TEST_UUID}" 5`), {
      ok: true,
      command: { kind: "start", uuid: TEST_UUID, n: 5 },
    });
    assert.deepEqual(parseStatefulCommand(`  START ${TEST_UUID}  65535 `), {
      ok: true,
      command: { kind: "start", uuid: TEST_UUID, n: 65535 },
    });
    assert.deepEqual(parseStatefulCommand(`CONTINUE ${TEST_UUID} 4294967295`), {
      ok: true,
      command: { kind: "continue", uuid: TEST_UUID, last: 4294967295 },
    });
    assert.deepEqual(parseStatefulCommand(`CONTINUE ${TEST_UUID} @0`), {
      ok: true,
      command: { kind: "continue", uuid: TEST_UUID, position: 0 },
    });
    assert.deepEqual(parseStatefulCommand(`CONTINUE ${TEST_UUID}`), {
      ok: true,
      command: { kind: "continue", uuid: TEST_UUID },
    });
  });

  it("says what was wrong and what was expected, starting with the seed's own phrase", () => {
    const cases: [string, string][] = [
      ["", 'empty command: expected START "<uuid>" <n> or CONTINUE <uuid> <last>'],
      ["FOO", 'unknown command "FOO": expected START "<uuid>" <n> or CONTINUE <uuid> <last>'],
      ["start x 5", 'unknown command "start x 5": expected START "<uuid>" <n> or CONTINUE <uuid> <last>'],
      [
        "END",
        'unknown command "END": this server is stateful; expected START "<uuid>" <n> or CONTINUE <uuid> <last>',
      ],
      ["START", 'invalid start parameters: expected START "<uuid>" <n>, got "START"'],
      [
        `START "${TEST_UUID}"`,
        `invalid start parameters: expected START "<uuid>" <n>, got "START \\"${TEST_UUID}\\""`,
      ],
      [
        "START abc 5",
        'invalid uuid: "abc" is not a uuid such as a17417a0-aa39-40b5-8675-247713cc4908 (36 characters, or 38 with one wrapping pair such as quotes)',
      ],
      [`START ${TEST_UUID} five`, 'invalid n: "five" is not a whole number'],
      [`START ${TEST_UUID} -1`, 'invalid n: "-1" is not a whole number'],
      [`START ${TEST_UUID} 0`, "invalid n value: 0 is not in 1..65535"],
      [`START ${TEST_UUID} 65536`, "invalid n value: 65536 is not in 1..65535"],
      [
        "CONTINUE",
        'invalid continue parameters: expected CONTINUE <uuid> <last> or CONTINUE <uuid> @<position>, got "CONTINUE"',
      ],
      [
        `CONTINUE ${TEST_UUID} 1 2`,
        `invalid continue parameters: expected CONTINUE <uuid> <last> or CONTINUE <uuid> @<position>, got "CONTINUE ${TEST_UUID} 1 2"`,
      ],
      [
        `CONTINUE ${TEST_UUID} 4294967296`,
        'invalid last number: "4294967296" is not a whole number from 0 to 4294967295',
      ],
      [`CONTINUE ${TEST_UUID} x`, 'invalid last number: "x" is not a whole number from 0 to 4294967295'],
      [`CONTINUE ${TEST_UUID} @x`, 'invalid position: "@x" is not @ and a whole number from 0 to 65536'],
      [
        `CONTINUE ${TEST_UUID} @65537`,
        'invalid position: "@65537" is not @ and a whole number from 0 to 65536',
      ],
    ];
    for (const [text, error] of cases)
      assert.deepEqual(parseStatefulCommand(text), { ok: false, error }, text);
  });

  it("parses the stateless commands, uint64 exactly, with a precise error for each bad one", () => {
    assert.deepEqual(parseStatelessCommand("START"), { ok: true, command: { kind: "start" } });
    assert.deepEqual(parseStatelessCommand("END"), { ok: true, command: { kind: "end" } });
    assert.deepEqual(parseStatelessCommand("CONTINUE 18446744073709551615"), {
      ok: true,
      command: { kind: "continue", x: MAX_UINT64 },
    });
    const cases: [string, string][] = [
      ["FOO", 'unknown command "FOO": expected START, CONTINUE <x> or END'],
      ["", "empty command: expected START, CONTINUE <x> or END"],
      [
        `START "${TEST_UUID}" 5`,
        `invalid start parameters: this server is stateless and START takes no arguments, got "START \\"${TEST_UUID}\\" 5"`,
      ],
      ["END now", 'invalid end parameters: END takes no arguments, got "END now"'],
      ["CONTINUE", 'invalid continue parameters: expected CONTINUE <x>, got "CONTINUE"'],
      ["CONTINUE 1.5", 'invalid continue value: "1.5" is not a whole number'],
      [
        "CONTINUE 18446744073709551616",
        'invalid continue value: "18446744073709551616" is larger than 18446744073709551615',
      ],
      ["CONTINUE 0", "invalid a value: 0: CONTINUE takes the last value received, 1 or more"],
    ];
    for (const [text, error] of cases)
      assert.deepEqual(parseStatelessCommand(text), { ok: false, error }, text);
    const long = `FOO ${"x".repeat(200)}`;
    const r = parseStatelessCommand(long);
    assert.ok(!r.ok && r.error.length < 140, "a long command is cut in the error");
  });
});

describe("numbers: resuming a session", () => {
  // Values chosen to repeat: 7 at positions 1, 3 and 5.
  const values = [7, 9, 7, 3, 7, 11];
  const value = (k: number): number => values[k - 1]!;
  const sum = (k: number): number => values.slice(0, k).reduce((c, x) => addToChecksum(c, x), 0);
  const state = (sentCount: number, n = values.length): ResumeState => ({
    n,
    sentCount,
    checksum: sum(Math.min(sentCount, n)),
  });

  it("resolves a repeated last value to its latest position sent, never an earlier one", () => {
    assert.deepEqual(resolveResume(state(5), value, { last: 7 }, "u"), {
      ok: true,
      position: 5,
      checksum: sum(5),
    });
    assert.deepEqual(resolveResume(state(4), value, { last: 7 }, "u"), {
      ok: true,
      position: 3,
      checksum: sum(3),
    });
    assert.deepEqual(resolveResume(state(6), value, { last: 9 }, "u"), {
      ok: true,
      position: 2,
      checksum: sum(2),
    });
  });

  it("takes an explicit @position as given, up to what was sent", () => {
    assert.deepEqual(resolveResume(state(5), value, { position: 1 }, "u"), {
      ok: true,
      position: 1,
      checksum: 7,
    });
    assert.deepEqual(resolveResume(state(5), value, { position: 0 }, "u"), {
      ok: true,
      position: 0,
      checksum: 0,
    });
    assert.deepEqual(resolveResume(state(5), value, { position: 6 }, "u"), {
      ok: false,
      error: "wrong position: @6 is beyond the 5 messages sent to session u",
    });
  });

  it("recognises the final checksum as the last value, and 0 as nothing received", () => {
    const done = state(7);
    assert.deepEqual(resolveResume(done, value, { last: done.checksum }, "u"), {
      ok: true,
      position: 7,
      checksum: done.checksum,
    });
    assert.deepEqual(resolveResume(state(2), value, { last: 0 }, "u"), {
      ok: true,
      position: 0,
      checksum: 0,
    });
  });

  it("refuses a value never sent, and resumes the older client's bare CONTINUE where the server is", () => {
    assert.deepEqual(resolveResume(state(3), value, { last: 3 }, "u"), {
      ok: false,
      error: "wrong last number: 3 is not among the 3 numbers sent to session u",
    });
    assert.deepEqual(resolveResume(state(4), value, { legacy: true }, "u"), {
      ok: true,
      position: 4,
      checksum: sum(4),
    });
  });
});

describe("numbers: comms.proto", () => {
  it("the embedded descriptor defines exactly what comms.proto does", () => {
    // Compiled tests sit in dist/src/numbers; the .proto stays in the source tree.
    const file = fileURLToPath(new URL("../../../src/numbers/comms.proto", import.meta.url));
    const shape = (d: PackageDefinition): unknown =>
      Object.fromEntries(
        Object.entries(d).map(([name, v]) => {
          if ("format" in v) return [name, v.type];
          return [
            name,
            Object.fromEntries(
              Object.entries(v).map(([m, md]) => [
                m,
                [md.path, md.requestStream, md.responseStream, md.requestType.type, md.responseType.type],
              ]),
            ),
          ];
        }),
      );
    const fromFile = loadSync(file, LOADER_OPTIONS);
    assert.deepEqual(shape(fromJSON(COMMS_DESCRIPTOR, LOADER_OPTIONS)), shape(fromFile));
    assert.equal(fromFile["grpc.Comms"] && "GetNumbers" in fromFile["grpc.Comms"], true);
    const method = (fromFile["grpc.Comms"] as Record<string, { path: string }>).GetNumbers!;
    assert.equal(method.path, "/grpc.Comms/GetNumbers");
  });
});
