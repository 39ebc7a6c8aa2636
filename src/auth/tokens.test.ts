import assert from "node:assert/strict";
import { generateKeyPairSync, type KeyObject, randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import fc from "fast-check";
import { base64url, SignJWT } from "jose";
import { isMusterError } from "../../test/support/errors.js";
import type { MusterError } from "../errors/muster-error.js";
import { LABEL_KEY_PATTERN, NAME_PATTERN } from "../wire/frame.js";
import { type AuthKey, HMAC_PREFIX, parseKey } from "./keys.js";
import {
  checkIssue,
  decodeTokenUnverified,
  issueToken,
  MAX_TOKEN_CHARS,
  type TokenClaims,
  type TokenFailureReason,
  verifyToken,
} from "./tokens.js";

/** An Ed25519 key pair as muster keys, with the raw KeyObjects to forge tokens with. */
function edPair(): { key: AuthKey; pub: AuthKey; privateKey: KeyObject; publicKey: KeyObject } {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  return {
    key: parseKey(privateKey.export({ type: "pkcs8", format: "pem" }).toString(), "inline"),
    pub: parseKey(publicKey.export({ type: "spki", format: "pem" }).toString(), "inline.pub"),
    privateKey,
    publicKey,
  };
}

function hmacKey(): { key: AuthKey; secret: Uint8Array } {
  const secret = new Uint8Array(randomBytes(32));
  return { key: parseKey(`${HMAC_PREFIX}${Buffer.from(secret).toString("base64url")}`, "inline"), secret };
}

const ed = edPair();
const hs = hmacKey();
const NOW = Date.UTC(2030, 0, 1, 12, 0, 0);
const NOW_S = NOW / 1000;

/** A well-formed muster payload, overridable claim by claim (undefined removes one). */
function payload(over: Record<string, unknown> = {}): Record<string, unknown> {
  const p: Record<string, unknown> = {
    iss: "muster",
    sub: "web-1",
    jti: "abcdefghijklmnopqrstuv",
    iat: NOW_S,
    role: "agent",
    ...over,
  };
  for (const k of Object.keys(p)) if (p[k] === undefined) delete p[k];
  return p;
}

/** Signs any payload and header with the Ed25519 test key, as only a key holder could. */
const forge = (p: Record<string, unknown>, header: Record<string, unknown> = {}): Promise<string> =>
  new SignJWT(p).setProtectedHeader({ alg: "EdDSA", ...header }).sign(ed.privateKey);

/** verifyToken refuses with UNAUTHENTICATED, exactly this message and details.reason. */
async function refused(
  key: AuthKey,
  token: string,
  reason: TokenFailureReason,
  message: string | RegExp,
  now = NOW,
): Promise<void> {
  await assert.rejects(verifyToken(key, token, now), (err: unknown) => {
    isMusterError("UNAUTHENTICATED", message)(err);
    assert.deepEqual((err as MusterError).details, { reason });
    if (token.length >= 8)
      assert.ok(!(err as MusterError).message.includes(token), "the message never contains the token");
    return true;
  });
}

const b64 = (v: unknown): string => base64url.encode(JSON.stringify(v));

describe("issue and verify", () => {
  for (const [alg, key] of [
    ["EdDSA", ed.key],
    ["HS256", hs.key],
  ] as const) {
    it(`round-trips every claim with ${alg}`, async () => {
      const token = await issueToken(key, {
        role: "agent",
        subject: "web-1",
        labels: { role: "web", zone: "eu" },
        methods: ["muster.agents", "logs.*"],
        ttlMs: 3_600_000,
        id: "tok_1",
        now: NOW + 400,
      });
      const expected: TokenClaims = {
        id: "tok_1",
        role: "agent",
        subject: "web-1",
        labels: { role: "web", zone: "eu" },
        methods: ["muster.agents", "logs.*"],
        issuedAt: NOW,
        expiresAt: NOW + 3_601_000,
      };
      assert.deepEqual(await verifyToken(key, token, NOW), expected);
      assert.deepEqual(decodeTokenUnverified(token), expected);
      const header = JSON.parse(Buffer.from(token.split(".")[0]!, "base64url").toString());
      assert.deepEqual(header, { alg, typ: "JWT" });
    });
  }

  it("writes the JWT claims iss, sub, jti, iat, exp, role, and leaves out empty labels and absent methods", async () => {
    const token = await issueToken(hs.key, {
      role: "operator",
      subject: "alice",
      ttlMs: 1000,
      id: "x",
      now: NOW,
    });
    const body = JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString());
    assert.deepEqual(body, {
      iss: "muster",
      sub: "alice",
      jti: "x",
      iat: NOW_S,
      role: "operator",
      exp: NOW_S + 1,
    });
  });

  it("issues tokens without expiry, with a random 128-bit id", async () => {
    const a = await verifyToken(ed.key, await issueToken(ed.key, { role: "admin", subject: "ci" }));
    const b = await verifyToken(ed.key, await issueToken(ed.key, { role: "admin", subject: "ci" }));
    assert.equal(a.expiresAt, undefined);
    assert.match(a.id, /^[A-Za-z0-9_-]{22}$/);
    assert.notEqual(a.id, b.id);
    assert.deepEqual(a.labels, {});
    assert.equal("methods" in a, false);
  });

  it("verifies with the public key alone", async () => {
    const token = await issueToken(ed.key, {
      role: "enrol",
      subject: "edge-*",
      labels: { site: "a" },
      now: NOW,
    });
    assert.equal((await verifyToken(ed.pub, token, NOW)).subject, "edge-*");
  });

  it("refuses bad issue options with INVALID_ARGUMENT", async () => {
    const bad = async (o: Parameters<typeof issueToken>[1], message: string | RegExp, key = ed.key) =>
      assert.rejects(issueToken(key, o), isMusterError("INVALID_ARGUMENT", message));
    await bad({ role: "agent", subject: "x" }, /public key: it verifies tokens but cannot sign/, ed.pub);
    await bad(
      { role: "root" as "admin", subject: "x" },
      'role "root" is unknown: use one of agent, operator, admin, enrol',
    );
    await bad({ role: "admin", subject: "" }, "token subject: subject must be 1–256 characters");
    await bad({ role: "admin", subject: "x".repeat(257) }, "token subject: subject must be 1–256 characters");
    await bad(
      { role: "admin", subject: "a\nb" },
      "token subject: subject must not contain control characters",
    );
    await bad({ role: "agent", subject: "web 1" }, /^token subject: name "web 1" is invalid/);
    await bad(
      { role: "enrol", subject: "edge/*" },
      /^token subject: enrolment subject "edge\/\*" is invalid/,
    );
    await bad(
      { role: "agent", subject: "a", labels: { "-x": "1" } },
      /^token labels: label key "-x" is invalid/,
    );
    await bad(
      { role: "operator", subject: "a", labels: { a: "1" } },
      "labels are for agent and enrol tokens, not operator tokens",
    );
    await bad({ role: "agent", subject: "a", methods: [] }, "token methods must be a list of 1–64 globs");
    await bad(
      { role: "agent", subject: "a", methods: Array(65).fill("m") },
      "token methods must be a list of 1–64 globs",
    );
    await bad(
      { role: "agent", subject: "a", methods: ["ok", ""] },
      "token method 2 must be 1–255 characters, no control characters",
    );
    await bad({ role: "agent", subject: "a", methods: ["m".repeat(256)] }, /^token method 1 must be 1–255/);
    await bad(
      { role: "agent", subject: "a", ttlMs: 0 },
      "token ttlMs must be a number of milliseconds above 0, not 0",
    );
    await bad({ role: "agent", subject: "a", ttlMs: Number.NaN }, /^token ttlMs must be/);
    await bad({ role: "agent", subject: "a", id: "a.b" }, /^token id: a token id is 1–128 base64url/);
    const labels = Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`k${i}`, "v".repeat(200)]));
    await bad({ role: "agent", subject: "a", labels }, /^the token would be \d+ characters, more than 4096/);
  });
});

describe("verification failures", () => {
  it("refuses a token signed by another key, for each algorithm", async () => {
    const other = edPair();
    await refused(
      ed.key,
      await issueToken(other.key, { role: "admin", subject: "x", now: NOW }),
      "bad_signature",
      "token signature does not match this server's key",
    );
    await refused(
      hs.key,
      await issueToken(hmacKey().key, { role: "admin", subject: "x", now: NOW }),
      "bad_signature",
      "token signature does not match this server's key",
    );
  });

  it("refuses the other algorithm both ways", async () => {
    await refused(
      ed.key,
      await issueToken(hs.key, { role: "admin", subject: "x", now: NOW }),
      "bad_signature",
      `token is signed with "HS256", but this server's key is EdDSA`,
    );
    await refused(
      hs.key,
      await issueToken(ed.key, { role: "admin", subject: "x", now: NOW }),
      "bad_signature",
      `token is signed with "EdDSA", but this server's key is HS256`,
    );
  });

  it("refuses alg confusion: HS256 keyed with the Ed25519 public key's bytes", async () => {
    const pem = new TextEncoder().encode(ed.publicKey.export({ type: "spki", format: "pem" }).toString());
    const der = new Uint8Array(ed.publicKey.export({ type: "spki", format: "der" }));
    for (const secret of [pem, der]) {
      const token = await new SignJWT(payload()).setProtectedHeader({ alg: "HS256" }).sign(secret);
      for (const key of [ed.key, ed.pub])
        await refused(
          key,
          token,
          "bad_signature",
          `token is signed with "HS256", but this server's key is EdDSA`,
        );
    }
  });

  it('refuses alg "none", whatever its spelling, and an empty signature', async () => {
    for (const alg of ["none", "None", "NONE"]) {
      const token = `${b64({ alg })}.${b64(payload())}.`;
      await refused(
        ed.key,
        token,
        "bad_signature",
        `token is not signed (alg "none"): this server accepts EdDSA only`,
      );
      await refused(
        hs.key,
        token,
        "bad_signature",
        `token is not signed (alg "none"): this server accepts HS256 only`,
      );
    }
    const good = await issueToken(ed.key, { role: "admin", subject: "x", now: NOW });
    await refused(
      ed.key,
      good.slice(0, good.lastIndexOf(".") + 1),
      "bad_signature",
      "token signature does not match this server's key",
    );
  });

  it("refuses a tampered payload and a tampered signature", async () => {
    const token = await issueToken(ed.key, { role: "agent", subject: "web-1", now: NOW });
    const [h, p, s] = token.split(".") as [string, string, string];
    const body = JSON.parse(Buffer.from(p, "base64url").toString());
    await refused(
      ed.key,
      `${h}.${b64({ ...body, role: "admin" })}.${s}`,
      "bad_signature",
      "token signature does not match this server's key",
    );
    const flipped = s.slice(0, 10) + (s[10] === "A" ? "B" : "A") + s.slice(11);
    await refused(
      ed.key,
      `${h}.${p}.${flipped}`,
      "bad_signature",
      "token signature does not match this server's key",
    );
    const hsToken = await issueToken(hs.key, { role: "agent", subject: "web-1", now: NOW });
    const [hh, , hsig] = hsToken.split(".") as [string, string, string];
    await refused(
      hs.key,
      `${hh}.${b64({ ...body, sub: "web-2" })}.${hsig}`,
      "bad_signature",
      "token signature does not match this server's key",
    );
  });

  it("refuses an expired token, with 30 s of tolerance", async () => {
    const token = await issueToken(ed.key, { role: "agent", subject: "web-1", ttlMs: 60_000, now: NOW });
    const exp = NOW + 60_000;
    assert.equal((await verifyToken(ed.key, token, exp + 29_999)).expiresAt, exp);
    await refused(ed.key, token, "expired", "token expired at 2030-01-01T12:01:00.000Z", exp + 30_000);
  });

  it("refuses a token not yet valid (nbf), with 30 s of tolerance", async () => {
    const token = await forge(payload({ nbf: NOW_S + 120 }));
    await verifyToken(ed.key, token, NOW + 90_000);
    await refused(
      ed.key,
      token,
      "not_yet_valid",
      "token not valid before 2030-01-01T12:02:00.000Z",
      NOW + 89_999,
    );
  });

  it("refuses bad claims, naming the claim", async () => {
    const cases: [Record<string, unknown>, string | RegExp][] = [
      [{ role: "root" }, 'token role "root" is unknown'],
      [{ role: undefined }, "token has no role"],
      [{ iss: undefined }, "token has no issuer (iss)"],
      [{ iss: "someone-else" }, 'token issuer "someone-else" is not "muster"'],
      [{ jti: undefined }, /^token id \(jti\) is invalid/],
      [{ jti: "has space" }, /^token id \(jti\) is invalid/],
      [{ sub: undefined }, "token subject (sub): subject must be 1–256 characters"],
      [{ sub: "bad name" }, /^token subject \(sub\): name "bad name" is invalid/],
      [{ labels: ["x"] }, "token labels: labels must be an object"],
      [{ labels: { a: 1 } }, "token labels: label a must have a string value"],
      [{ methods: "sys.*" }, "token methods must be a list of 1–64 globs"],
      [{ methods: [7] }, "token method 1 must be 1–255 characters, no control characters"],
      [{ iat: undefined }, "token has no issue time (iat) in seconds"],
      [{ iat: "yesterday" }, "token has no issue time (iat) in seconds"],
      [{ exp: "soon" }, "token expiry (exp) is not a time in seconds"],
      [{ nbf: null }, "token nbf is not a time in seconds"],
    ];
    for (const [over, message] of cases) await refused(ed.key, await forge(payload(over)), "claims", message);
  });

  it("refuses a payload that is not a JSON object", async () => {
    const { CompactSign } = await import("jose");
    for (const body of ["[1,2]", "not json", "42"]) {
      const token = await new CompactSign(new TextEncoder().encode(body))
        .setProtectedHeader({ alg: "EdDSA" })
        .sign(ed.privateKey);
      await refused(ed.key, token, "malformed", "token is malformed: its payload is not a JSON object");
    }
  });

  it("refuses garbage, an empty token and an over-long one before any crypto", async () => {
    await refused(ed.key, "", "malformed", "token is empty");
    await refused(
      ed.key,
      "x".repeat(MAX_TOKEN_CHARS + 1),
      "malformed",
      "token is longer than 4096 characters",
    );
    for (const junk of ["garbage", "a.b", "a.b.c.d", "a b.c.d", "Bearer x.y.z"])
      await refused(
        ed.key,
        junk,
        "malformed",
        "token is malformed: not three base64url parts separated by dots",
      );
    await refused(ed.key, "e30.e30.", "malformed", "token is malformed: its header has no alg");
    await refused(
      ed.key,
      "bm90anNvbg.e30.abc",
      "malformed",
      "token is malformed: its header is not base64url JSON",
    );
    await refused(
      ed.key,
      `${b64({ alg: "EdDSA", crit: ["exp"] })}.${b64(payload())}.abc`,
      "malformed",
      /^token is malformed: /,
    );
  });
});

describe("decodeTokenUnverified", () => {
  it("reads the claims of any muster token, signed by any key, expired or not", async () => {
    const token = await issueToken(edPair().key, {
      role: "agent",
      subject: "a",
      labels: { x: "y" },
      ttlMs: 1,
      now: 0,
    });
    assert.deepEqual(decodeTokenUnverified(token), {
      id: decodeTokenUnverified(token).id,
      role: "agent",
      subject: "a",
      labels: { x: "y" },
      issuedAt: 0,
      expiresAt: 1000,
    });
  });

  it("refuses what is not a muster token with INVALID_ARGUMENT", async () => {
    const bad = (token: string, message: string | RegExp) =>
      assert.throws(() => decodeTokenUnverified(token), isMusterError("INVALID_ARGUMENT", message));
    bad("", "not a muster token: it is empty");
    bad("x".repeat(5000), "not a muster token: it is longer than 4096 characters");
    bad("hello", "not a muster token: not three base64url parts separated by dots");
    bad("e30.bm90anNvbg.x", "not a muster token: its payload is not base64url JSON");
    bad(await forge(payload({ iss: "google" })), 'not a muster token: token issuer "google" is not "muster"');
    bad(await forge(payload({ role: "god" })), 'not a muster token: token role "god" is unknown');
  });
});

/** No C0 or C1 control character (subjects and methods refuse them). */
const noControl = (s: string): boolean =>
  [...s].every((c) => {
    const n = c.codePointAt(0)!;
    return n >= 0x20 && !(n >= 0x7f && n <= 0x9f);
  });

describe("property: issue → verify returns the claims", () => {
  const keyChars = LABEL_KEY_PATTERN;
  const arbitrary = fc.record({
    useHmac: fc.boolean(),
    role: fc.constantFrom("agent", "operator", "admin", "enrol"),
    name: fc.stringMatching(NAME_PATTERN),
    who: fc.string({ minLength: 1, maxLength: 256 }).filter(noControl),
    glob: fc.stringMatching(/^[A-Za-z0-9._:@*?-]{1,128}$/),
    labels: fc.dictionary(fc.stringMatching(keyChars), fc.string({ maxLength: 40 }), { maxKeys: 6 }),
    methods: fc.option(
      fc.array(fc.string({ minLength: 1, maxLength: 30 }).filter(noControl), { minLength: 1, maxLength: 8 }),
      { nil: undefined },
    ),
    ttlMs: fc.option(fc.integer({ min: 1, max: 10 * 365 * 86_400_000 }), { nil: undefined }),
    now: fc.integer({ min: 0, max: 4_000_000_000_000 }),
  });

  it("for random subjects, labels, methods and lifetimes, and decodeTokenUnverified agrees", async () => {
    await fc.assert(
      fc.asyncProperty(arbitrary, async (a) => {
        const key = a.useHmac ? hs.key : ed.key;
        const subject = a.role === "agent" ? a.name : a.role === "enrol" ? a.glob : a.who;
        const labels = a.role === "agent" || a.role === "enrol" ? a.labels : {};
        const token = await issueToken(key, {
          role: a.role,
          subject,
          labels,
          ...(a.methods !== undefined ? { methods: a.methods } : {}),
          ...(a.ttlMs !== undefined ? { ttlMs: a.ttlMs } : {}),
          now: a.now,
        });
        const expected: TokenClaims = {
          id: decodeTokenUnverified(token).id,
          role: a.role,
          subject,
          labels: { ...labels },
          issuedAt: Math.floor(a.now / 1000) * 1000,
          expiresAt: a.ttlMs === undefined ? undefined : Math.ceil((a.now + a.ttlMs) / 1000) * 1000,
        };
        if (a.methods !== undefined) expected.methods = a.methods;
        assert.deepEqual(await verifyToken(key, token, a.now), expected);
        assert.deepEqual(decodeTokenUnverified(token), expected);
      }),
      { numRuns: 200 },
    );
  });
});

describe("checkIssue: a token's length known before it is signed", () => {
  it("is exactly the length issueToken returns, for both algorithms and any characters", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          useHmac: fc.boolean(),
          name: fc.stringMatching(NAME_PATTERN),
          labels: fc.dictionary(
            fc.stringMatching(LABEL_KEY_PATTERN),
            fc.string({ maxLength: 40, unit: "binary" }),
            { maxKeys: 6 },
          ),
          methods: fc.option(
            fc.array(fc.string({ minLength: 1, maxLength: 30, unit: "binary" }).filter(noControl), {
              minLength: 1,
              maxLength: 8,
            }),
            { nil: undefined },
          ),
          ttlMs: fc.option(fc.integer({ min: 1, max: 10 * 365 * 86_400_000 }), { nil: undefined }),
          now: fc.integer({ min: 0, max: 4_000_000_000_000 }),
        }),
        async (a) => {
          const key = a.useHmac ? hs.key : ed.key;
          const options = {
            role: "agent" as const,
            subject: a.name,
            labels: a.labels,
            id: "fixedId1234",
            now: a.now,
            ...(a.methods !== undefined ? { methods: a.methods } : {}),
            ...(a.ttlMs !== undefined ? { ttlMs: a.ttlMs } : {}),
          };
          let length: number | undefined;
          try {
            length = checkIssue(key, options);
          } catch (err) {
            // Refused as too long: issueToken refuses it alike, before signing.
            assert.match((err as MusterError).message, /the token would be \d+ characters, more than 4096/);
            await assert.rejects(
              issueToken(key, options),
              isMusterError("INVALID_ARGUMENT", /more than 4096/),
            );
            return;
          }
          assert.equal((await issueToken(key, options)).length, length);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("refuses, without a signing key, what issueToken would refuse: bad options, and a token over the limit", () => {
    const labels: Record<string, string> = {};
    for (let i = 0; i < 16; i++) labels[`key-${i}`] = "v".repeat(250);
    assert.throws(
      () => checkIssue(ed.pub, { role: "agent", subject: "web-1", labels }),
      isMusterError(
        "INVALID_ARGUMENT",
        /the token would be \d+ characters, more than 4096: give fewer or shorter labels/,
      ),
    );
    assert.throws(() => checkIssue(ed.pub, { role: "agent", subject: "no spaces" }), /token subject/);
    assert.ok(checkIssue(ed.pub, { role: "agent", subject: "web-1" }) < 300);
  });
});
