import assert from "node:assert/strict";
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { isMusterError } from "../../test/support/errors.js";
import type { Logger } from "../internal/logger.js";
import { silentLogger } from "../internal/logger.js";
import { appendRevocation, defaultRevocationsPath, parseRevocations, RevocationList } from "./revocations.js";

const dir = mkdtempSync(join(tmpdir(), "muster-revoked-"));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const fresh = (): string => join(dir, `r${++n}`, "revoked.txt");

/** Resolves when `test()` holds, checking every few ms; fails after a generous bound. */
async function until(test: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !test(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(test(), `still waiting for ${what}`);
}

/** A logger that keeps its error lines. */
function recordingLogger(): Logger & { errors: string[] } {
  const errors: string[] = [];
  const logger = {
    ...silentLogger,
    errors,
    error: (obj: object | string, msg?: string) => {
      errors.push(typeof obj === "string" ? obj : `${msg} ${JSON.stringify(obj)}`);
    },
  };
  return logger as Logger & { errors: string[] };
}

describe("the revocations file format", () => {
  it("reads ids, with or without time and reason; skips blanks and comments", () => {
    const ids = parseRevocations(
      [
        "# revoked tokens",
        "",
        "AAAAAAAAAAAAAAAAAAAAAA 2030-01-01T00:00:00.000Z laptop lost, says alice",
        "  b_c-d   2030-01-01T00:00:00Z",
        "justanid",
        "   # indented comment",
        "zone01 2030-01-01T00:00:00+01:00 x",
      ].join("\n"),
      "f",
    );
    assert.deepEqual([...ids], ["AAAAAAAAAAAAAAAAAAAAAA", "b_c-d", "justanid", "zone01"]);
  });

  it("names the file and line of a malformed line, without repeating a pasted token", () => {
    const token = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln";
    assert.throws(
      () => parseRevocations(`ok\n${token} 2030-01-01T00:00:00Z\n`, "/r.txt"),
      (err: unknown) => {
        isMusterError(
          "INVALID_ARGUMENT",
          "revocations /r.txt line 2: the first word is not a token id (a token id is 1–128 base64url characters (letters, digits, - and _)); to revoke a whole token, run muster token revoke TOKEN",
        )(err);
        assert.ok(!(err as Error).message.includes(token));
        return true;
      },
    );
    assert.throws(
      () => parseRevocations("a\n\nb yesterday because\n", "f"),
      isMusterError(
        "INVALID_ARGUMENT",
        'revocations f line 3: "yesterday" after the id is not an ISO time such as 2026-01-31T12:00:00Z',
      ),
    );
    assert.throws(
      () => parseRevocations(`${"x".repeat(129)}\n`, "f"),
      isMusterError("INVALID_ARGUMENT", /line 1/),
    );
  });

  it("is at $MUSTER_HOME/revoked.txt by default", () => {
    const saved = process.env.MUSTER_HOME;
    process.env.MUSTER_HOME = "/srv/m";
    try {
      assert.equal(defaultRevocationsPath(), "/srv/m/revoked.txt");
    } finally {
      if (saved === undefined) delete process.env.MUSTER_HOME;
      else process.env.MUSTER_HOME = saved;
    }
  });
});

describe("appendRevocation", () => {
  it("creates the file and its directory, appends once, and says when it already was revoked", () => {
    const path = fresh();
    const at = Date.UTC(2030, 0, 2, 3, 4, 5);
    assert.equal(appendRevocation(path, "tok1", "lost\nlaptop", at), true);
    assert.equal(appendRevocation(path, "tok2", undefined, at), true);
    assert.equal(appendRevocation(path, "tok1", "again", at), false);
    assert.equal(
      readFileSync(path, "utf8"),
      "tok1 2030-01-02T03:04:05.000Z lost laptop\ntok2 2030-01-02T03:04:05.000Z\n",
    );
  });

  it("starts a new line after a hand-written last line without one", () => {
    const path = fresh();
    appendRevocation(path, "first");
    appendFileSync(path, "byhand");
    appendRevocation(path, "third", "r", 0);
    assert.deepEqual([...parseRevocations(readFileSync(path, "utf8"), path)], ["first", "byhand", "third"]);
  });

  it("refuses a bad id and a malformed file (a server would ignore the new line with it)", () => {
    const path = fresh();
    assert.throws(
      () => appendRevocation(path, "a.b.c"),
      isMusterError("INVALID_ARGUMENT", /^cannot revoke: a token id is/),
    );
    appendRevocation(path, "ok");
    appendFileSync(path, "ok not-a-time\n");
    assert.throws(
      () => appendRevocation(path, "new"),
      isMusterError("INVALID_ARGUMENT", /line 2: "not-a-time"/),
    );
  });
});

describe("RevocationList", () => {
  it("in memory: add, has, size; add is idempotent and checks ids", () => {
    const list = new RevocationList({});
    list.load();
    list.add("x1");
    list.add("x1");
    assert.equal(list.has("x1"), true);
    assert.equal(list.has("x2"), false);
    assert.equal(list.size, 1);
    assert.throws(() => list.add("not an id"), isMusterError("INVALID_ARGUMENT", /^cannot revoke/));
  });

  it("loads a file (missing: empty; malformed: an error) and appends what add() revokes", () => {
    const path = fresh();
    const list = new RevocationList({ path, now: () => Date.UTC(2030, 0, 1) });
    list.load();
    assert.equal(list.size, 0);
    list.add("abc", "gone");
    assert.equal(readFileSync(path, "utf8"), "abc 2030-01-01T00:00:00.000Z gone\n");
    writeFileSync(path, "abc\ndef\n");
    list.load();
    assert.deepEqual([list.has("abc"), list.has("def"), list.size], [true, true, 2]);
    writeFileSync(path, "abc\n%%%\n");
    assert.throws(
      () => list.load(),
      isMusterError(
        "INVALID_ARGUMENT",
        `revocations ${path} line 2: the first word is not a token id (a token id is 1–128 base64url characters (letters, digits, - and _)); to revoke a whole token, run muster token revoke TOKEN`,
      ),
    );
  });

  it("watches the file: new ids reach the callback; a malformed file keeps the list and logs once", async () => {
    const path = fresh();
    appendRevocation(path, "one");
    const logger = recordingLogger();
    const list = new RevocationList({ path, pollMs: 10, logger });
    list.load();
    const seen: string[][] = [];
    list.watch((added) => seen.push(added));
    try {
      appendRevocation(path, "two");
      appendRevocation(path, "three");
      await until(() => list.has("three"), "the second write");
      assert.deepEqual(seen.flat(), ["two", "three"]);

      appendFileSync(path, "bad line here\nfour\n");
      await until(() => logger.errors.length > 0, "the error log");
      // Several polls later: still one error, and the list in force is the previous one.
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(logger.errors.length, 1);
      assert.match(logger.errors[0]!, /revocations file not applied/);
      assert.match(logger.errors[0]!, /line 4/);
      assert.equal(list.has("four"), false);
      assert.equal(list.has("three"), true);

      writeFileSync(path, "one\ntwo\nfour\n");
      await until(() => list.has("four"), "the repaired file");
      assert.deepEqual(seen.at(-1), ["four"]);
      assert.equal(list.has("three"), false, "the file is the truth: an id taken out is no longer revoked");

      list.add("five");
      assert.deepEqual(seen.at(-1), ["five"], "an addition is reported at once");
      await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(seen.at(-1), ["five"], "and not again when the poll sees it in the file");
      assert.equal(list.has("five"), true);
    } finally {
      list.close();
    }
  });

  it("addShared: ids from the cluster, in memory only, kept whatever the file says; list() tells each id's story", async () => {
    const path = fresh();
    appendRevocation(path, "fromfile", "by hand", Date.parse("2030-01-01T00:00:00Z"));
    const list = new RevocationList({ path, pollMs: 10, now: () => Date.parse("2030-01-03T00:00:00Z") });
    list.load();
    const seen: string[][] = [];
    list.watch((ids) => seen.push(ids));
    try {
      assert.equal(
        list.addShared("shared1", { at: "2030-01-02T00:00:00.000Z", reason: "lost", by: "ada" }),
        true,
      );
      assert.equal(list.addShared("shared1", { by: "someone else" }), false, "idempotent");
      assert.deepEqual(seen, [["shared1"]], "reported once");
      assert.ok(!readFileSync(path, "utf8").includes("shared1"), "never written to the file");
      list.add("local1", "mine", "bob");
      assert.deepEqual(list.list(), [
        { id: "fromfile", at: "2030-01-01T00:00:00.000Z", reason: "by hand", source: "file" },
        { id: "shared1", at: "2030-01-02T00:00:00.000Z", reason: "lost", by: "ada", source: "cluster" },
        { id: "local1", at: "2030-01-03T00:00:00.000Z", reason: "mine", by: "bob", source: "file" },
      ]);
      // The file rewritten without any of them: the file's go, the cluster's stay.
      writeFileSync(path, "other\n");
      await until(() => list.has("other"), "the rewritten file");
      assert.equal(list.has("fromfile"), false);
      assert.equal(list.has("local1"), false);
      assert.equal(list.has("shared1"), true);
      assert.throws(() => list.addShared("not an id"), /cannot revoke/);
    } finally {
      list.close();
    }
  });
});
