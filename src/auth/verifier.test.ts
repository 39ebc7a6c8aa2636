import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { isMusterError } from "../../test/support/errors.js";
import type { MusterError } from "../errors/muster-error.js";
import { HMAC_PREFIX, parseKey } from "./keys.js";
import { issueToken, type TokenClaims } from "./tokens.js";
import { TokenVerifier } from "./verifier.js";

const key = parseKey(`${HMAC_PREFIX}${randomBytes(32).toString("base64url")}`, "inline");
const NOW = Date.UTC(2030, 5, 1);

/** A TokenVerifier that counts its full verifications. */
class Counting extends TokenVerifier {
  calls = 0;
  protected override verifyUncached(token: string, now: number): Promise<TokenClaims> {
    this.calls++;
    return super.verifyUncached(token, now);
  }
}

const agentToken = (subject: string, ttlMs?: number): Promise<string> =>
  issueToken(key, { role: "agent", subject, labels: { z: "1" }, now: NOW, ...(ttlMs ? { ttlMs } : {}) });

describe("TokenVerifier", () => {
  it("verifies once, then answers from memory with the same claims", async () => {
    const v = new Counting(key);
    const token = await agentToken("web-1", 60_000);
    const first = await v.verify(token, NOW);
    const second = await v.verify(token, NOW + 1000);
    assert.deepEqual(second, first);
    assert.equal(v.calls, 1);
    assert.equal(v.size, 1);
    second.labels.z = "changed";
    assert.equal((await v.verify(token, NOW)).labels.z, "1", "callers get copies");
  });

  it("re-checks expiry on every hit, and forgets the expired token", async () => {
    const v = new Counting(key);
    const token = await agentToken("web-1", 60_000);
    await v.verify(token, NOW);
    await assert.rejects(v.verify(token, NOW + 90_000), (err: unknown) => {
      isMusterError("UNAUTHENTICATED", "token expired at 2030-06-01T00:01:00.000Z")(err);
      assert.deepEqual((err as MusterError).details, { reason: "expired" });
      return true;
    });
    assert.equal(v.calls, 1, "the expiry came from the memory, with verifyToken's message");
    assert.equal(v.size, 0);
  });

  it("does not remember failures", async () => {
    const v = new Counting(key);
    const token = await agentToken("web-1", 1000);
    for (let i = 0; i < 3; i++)
      await assert.rejects(
        v.verify(token, NOW + 60_000),
        isMusterError("UNAUTHENTICATED", /^token expired at/),
      );
    await assert.rejects(v.verify("garbage", NOW), isMusterError("UNAUTHENTICATED", /malformed/));
    assert.equal(v.calls, 4);
    assert.equal(v.size, 0);
  });

  it("shares one verification among concurrent callers", async () => {
    const v = new Counting(key);
    const token = await agentToken("web-1");
    const all = await Promise.all(Array.from({ length: 20 }, () => v.verify(token, NOW)));
    assert.equal(v.calls, 1);
    assert.ok(all.every((c) => c.subject === "web-1"));
  });

  it("drops the least recently used entry beyond maxEntries", async () => {
    const v = new Counting(key, { maxEntries: 2 });
    const [a, b, c] = await Promise.all(["a", "b", "c"].map((n) => agentToken(n)));
    await v.verify(a!, NOW);
    await v.verify(b!, NOW);
    await v.verify(a!, NOW); // a is now the most recent
    await v.verify(c!, NOW); // b goes
    assert.equal(v.size, 2);
    assert.equal(v.calls, 3);
    await v.verify(a!, NOW);
    assert.equal(v.calls, 3, "a was kept");
    await v.verify(b!, NOW);
    assert.equal(v.calls, 4, "b was dropped");
  });

  it("clear() forgets everything and says how much; maxEntries 0 remembers nothing", async () => {
    const v = new Counting(key);
    for (const n of ["a", "b", "c"]) await v.verify(await agentToken(n), NOW);
    assert.equal(v.clear(), 3);
    assert.equal(v.size, 0);
    assert.equal(v.clear(), 0);
    const none = new Counting(key, { maxEntries: 0 });
    const token = await agentToken("a");
    await none.verify(token, NOW);
    await none.verify(token, NOW);
    assert.equal(none.calls, 2);
    assert.equal(none.size, 0);
    assert.throws(
      () => new TokenVerifier(key, { maxEntries: -1 }),
      isMusterError("INVALID_ARGUMENT", /maxEntries/),
    );
  });

  it("lookup answers from memory only: undefined for an unknown token, the claims of a known one, the expiry of a stale one", async () => {
    const v = new Counting(key);
    const token = await agentToken("web-1", 60_000);
    assert.equal(v.lookup(token, NOW), undefined, "never verified: nothing is computed");
    assert.equal(v.lookup("garbage", NOW), undefined);
    assert.equal(v.calls, 0);
    const claims = await v.verify(token, NOW);
    assert.deepEqual(v.lookup(token, NOW + 1000), claims);
    assert.equal(v.calls, 1);
    assert.throws(() => v.lookup(token, NOW + 90_000), isMusterError("UNAUTHENTICATED", /^token expired at/));
    assert.equal(v.size, 0, "the expired token is forgotten");
  });
});
