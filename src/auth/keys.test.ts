import assert from "node:assert/strict";
import { createHash, generateKeyPairSync, randomBytes } from "node:crypto";
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { isMusterError } from "../../test/support/errors.js";
import type { MusterError } from "../errors/muster-error.js";
import {
  defaultKeyPath,
  generateKeyFile,
  HMAC_PREFIX,
  loadKeyFile,
  loadOrCreateKeyFile,
  musterHome,
  parseKey,
} from "./keys.js";
import { issueToken, verifyToken } from "./tokens.js";

const dir = mkdtempSync(join(tmpdir(), "muster-keys-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const mode = (path: string): number => statSync(path).mode & 0o777;

describe("parseKey", () => {
  it("reads an Ed25519 private key, its public key, and an HMAC secret", () => {
    const { privateKey, publicKey } = generateKeyPairSync("ed25519");
    const der = publicKey.export({ type: "spki", format: "der" });
    const fingerprint = createHash("sha256").update(der).digest("hex").slice(0, 16);
    const priv = parseKey(privateKey.export({ type: "pkcs8", format: "pem" }).toString(), "a.key");
    const pub = parseKey(`\n${publicKey.export({ type: "spki", format: "pem" })}\n\n`, "a.key.pub");
    assert.deepEqual({ ...priv }, { algorithm: "EdDSA", canSign: true, fingerprint, source: "a.key" });
    assert.deepEqual({ ...pub }, { algorithm: "EdDSA", canSign: false, fingerprint, source: "a.key.pub" });

    const secret = randomBytes(48);
    const hmac = parseKey(`${HMAC_PREFIX}${secret.toString("base64url")}\n`, "inline");
    const inner = createHash("sha256").update(secret).digest();
    assert.deepEqual(
      { ...hmac },
      {
        algorithm: "HS256",
        canSign: true,
        fingerprint: createHash("sha256").update(inner).digest("hex").slice(0, 16),
        source: "inline",
      },
    );
    assert.ok(Object.isFrozen(hmac));
  });

  it("refuses anything else, saying which form was expected and never repeating the text", () => {
    const secretish = "s3cr3t-material-never-shown";
    const refuse = (text: string, message: string | RegExp): void => {
      assert.throws(
        () => parseKey(text, "k"),
        (err: unknown) => {
          isMusterError("INVALID_ARGUMENT", message)(err);
          assert.ok(!(err as MusterError).message.includes(secretish));
          return true;
        },
      );
    };
    const forms =
      /expected an Ed25519 PEM key \("-----BEGIN PRIVATE KEY-----" or "-----BEGIN PUBLIC KEY-----"\) or a line muster-hmac-v1:<base64url secret>$/;
    refuse("  \n", /^key k is empty: expected/);
    refuse(secretish, /^key k is neither PEM nor an HMAC secret: /);
    refuse(secretish, forms);
    refuse(
      `${HMAC_PREFIX}${secretish}!`,
      'key k: the HMAC secret after "muster-hmac-v1:" must be base64url on one line',
    );
    refuse(
      `${HMAC_PREFIX}${Buffer.from(secretish).toString("base64url")}`,
      /^key k: the HMAC secret has 27 bytes, fewer than 32/,
    );
    refuse(`${HMAC_PREFIX}${randomBytes(32).toString("base64url")}\nmore`, /must be base64url on one line/);
    refuse(
      `-----BEGIN PRIVATE KEY-----\n${secretish}\n-----END PRIVATE KEY-----`,
      /^key k: the PEM private key cannot be read/,
    );
    refuse(
      `-----BEGIN PUBLIC KEY-----\n${secretish}\n-----END PUBLIC KEY-----`,
      /^key k: the PEM public key cannot be read/,
    );
    const rsa = generateKeyPairSync("rsa", { modulusLength: 1024 });
    refuse(
      rsa.privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
      "key k is a rsa private key: muster keys are Ed25519",
    );
    refuse(
      rsa.publicKey.export({ type: "spki", format: "pem" }).toString(),
      "key k is a rsa public key: muster keys are Ed25519",
    );
    const ec = generateKeyPairSync("ec", { namedCurve: "P-256" });
    refuse(
      ec.privateKey.export({ type: "sec1", format: "pem" }).toString(),
      /^key k is a PEM "EC PRIVATE KEY": expected/,
    );
    refuse(
      generateKeyPairSync("ed25519")
        .privateKey.export({ type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase: "p" })
        .toString(),
      "key k is an encrypted private key: muster reads unencrypted PKCS#8 keys only",
    );
  });
});

describe("key files", () => {
  it("generates an Ed25519 key (0600, directory 0700) and its public half (0644)", async () => {
    const path = join(dir, "new", "deeper", "auth.key");
    const key = generateKeyFile(path);
    assert.equal(key.algorithm, "EdDSA");
    assert.equal(mode(path), 0o600);
    assert.equal(mode(join(dir, "new", "deeper")), 0o700);
    assert.equal(mode(`${path}.pub`), 0o644);
    assert.deepEqual({ ...loadKeyFile(path) }, { ...key });
    const pub = loadKeyFile(`${path}.pub`);
    assert.equal(pub.canSign, false);
    assert.equal(pub.fingerprint, key.fingerprint);
    const token = await issueToken(key, { role: "admin", subject: "me" });
    assert.equal((await verifyToken(pub, token)).subject, "me");
  });

  it("generates an HMAC key file without a .pub", () => {
    const path = join(dir, "hmac.key");
    const key = generateKeyFile(path, "HS256");
    assert.equal(key.algorithm, "HS256");
    assert.equal(mode(path), 0o600);
    assert.match(readFileSync(path, "utf8"), /^muster-hmac-v1:[A-Za-z0-9_-]{43}\n$/);
    assert.throws(() => statSync(`${path}.pub`), /ENOENT/);
  });

  it("refuses to overwrite a key unless forced; forced, the file is new and 0600 again", () => {
    const path = join(dir, "keep.key");
    const first = generateKeyFile(path);
    chmodSync(path, 0o644);
    assert.throws(
      () => generateKeyFile(path),
      (err: unknown) => {
        isMusterError(
          "INVALID_ARGUMENT",
          `key file ${path} already exists: not overwritten (force replaces it)`,
        )(err);
        assert.deepEqual((err as MusterError).details, { path, errno: "EEXIST" });
        return true;
      },
    );
    assert.equal(loadKeyFile(path).fingerprint, first.fingerprint, "untouched");
    const second = generateKeyFile(path, "EdDSA", { force: true });
    assert.notEqual(second.fingerprint, first.fingerprint);
    assert.equal(mode(path), 0o600);
    assert.equal(loadKeyFile(`${path}.pub`).fingerprint, second.fingerprint);
  });

  it("names the path and errno of a missing or unreadable key file", () => {
    const missing = join(dir, "nope.key");
    assert.throws(
      () => loadKeyFile(missing),
      (err: unknown) => {
        isMusterError("INVALID_ARGUMENT", `cannot read key file ${missing}: ENOENT`)(err);
        assert.deepEqual((err as MusterError).details, { path: missing, errno: "ENOENT" });
        return true;
      },
    );
    assert.throws(
      () => loadKeyFile(dir),
      isMusterError("INVALID_ARGUMENT", `cannot read key file ${dir}: EISDIR`),
    );
    const garbage = join(dir, "garbage.key");
    writeFileSync(garbage, "hello");
    assert.throws(
      () => loadKeyFile(garbage),
      isMusterError("INVALID_ARGUMENT", /^key .*garbage.key is neither PEM/),
    );
  });

  it("loadOrCreateKeyFile creates once, then loads", () => {
    const path = join(dir, "auto", "auth.key");
    const a = loadOrCreateKeyFile(path);
    const b = loadOrCreateKeyFile(path);
    assert.equal(a.created, true);
    assert.equal(b.created, false);
    assert.equal(a.key.fingerprint, b.key.fingerprint);
    assert.equal(a.key.algorithm, "EdDSA");
  });

  it("finds the default paths from $MUSTER_AUTH_KEY and $MUSTER_HOME", () => {
    const saved = { home: process.env.MUSTER_HOME, key: process.env.MUSTER_AUTH_KEY };
    try {
      process.env.MUSTER_HOME = "/srv/m";
      delete process.env.MUSTER_AUTH_KEY;
      assert.equal(musterHome(), "/srv/m");
      assert.equal(defaultKeyPath(), "/srv/m/auth.key");
      process.env.MUSTER_AUTH_KEY = "/etc/muster/k";
      assert.equal(defaultKeyPath(), "/etc/muster/k");
      delete process.env.MUSTER_HOME;
      assert.match(musterHome(), /[/\\]\.muster$/);
    } finally {
      for (const [k, v] of [
        ["MUSTER_HOME", saved.home],
        ["MUSTER_AUTH_KEY", saved.key],
      ] as const) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });
});
