import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { isMusterError } from "../../test/support/errors.js";
import { LineSplitter } from "./lines.js";

function split(splitter: LineSplitter, chunks: Buffer[]): string[] {
  const lines: string[] = [];
  for (const c of chunks) splitter.push(c, (l) => lines.push(l));
  return lines;
}

describe("LineSplitter", () => {
  it("gives the same lines however the bytes are cut into chunks (multi-byte characters included)", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.string({ unit: "grapheme", maxLength: 40 }).map((s) => s.replaceAll("\n", "")),
          {
            maxLength: 20,
          },
        ),
        fc.array(fc.nat(50), { maxLength: 30 }),
        (lines, cuts) => {
          const bytes = Buffer.from(lines.map((l) => `${l}\n`).join(""));
          const chunks: Buffer[] = [];
          let at = 0;
          for (const c of cuts) {
            if (at >= bytes.length) break;
            chunks.push(bytes.subarray(at, at + c + 1));
            at += c + 1;
          }
          if (at < bytes.length) chunks.push(bytes.subarray(at));
          const s = new LineSplitter(1000);
          assert.deepEqual(split(s, chunks), lines);
          assert.equal(s.pending, 0);
        },
      ),
    );
  });

  it("keeps an unfinished line, and copies it (the caller may reuse its buffer)", () => {
    const s = new LineSplitter(100);
    const buf = Buffer.from("ALI");
    assert.deepEqual(split(s, [buf]), []);
    buf.write("XXX");
    assert.equal(s.pending, 3);
    assert.deepEqual(split(s, [Buffer.from("VE\nHELP\n")]), ["ALIVE", "HELP"]);
  });

  it("a line of exactly the limit passes; one byte more is refused before its newline, after the lines before it", () => {
    const s = new LineSplitter(5);
    assert.deepEqual(split(s, [Buffer.from("12345\n")]), ["12345"]);
    const got: string[] = [];
    assert.throws(
      () => s.push(Buffer.from("ok\n123456"), (l) => got.push(l)),
      isMusterError("RESOURCE_EXHAUSTED", "line longer than 5 bytes (at least 6 without a newline)"),
    );
    assert.deepEqual(got, ["ok"]);
    assert.throws(
      () => s.push(Buffer.from("\n"), () => {}),
      isMusterError("INVALID_ARGUMENT", "the stream already failed"),
    );
  });

  it("counts a long line across chunks", () => {
    const s = new LineSplitter(8);
    split(s, [Buffer.from("1234"), Buffer.from("5678")]);
    assert.throws(
      () => s.push(Buffer.from("9"), () => {}),
      isMusterError("RESOURCE_EXHAUSTED", "line longer than 8 bytes (at least 9 without a newline)"),
    );
  });
});
