// `muster token` through the real CLI, each test with a fresh $MUSTER_HOME (so nothing touches
// the real home directory); also the credential helper every client command uses, through a
// small real program, and docs/cli.md's `muster token` section against the subcommands' help.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, beforeEach, describe, it } from "node:test";
import { loadKeyFile } from "../src/auth/keys.js";
import { decodeTokenUnverified, verifyToken } from "../src/auth/tokens.js";
import { CLI, runCli, startScript } from "./support/cli.js";

const root = mkdtempSync(join(tmpdir(), "muster-token-cli-"));
after(() => rmSync(root, { recursive: true, force: true }));
let home = "";
let homes = 0;

// The children inherit this process's environment: a fresh home per test, no credentials.
beforeEach(() => {
  home = join(root, `home${++homes}`);
  process.env.MUSTER_HOME = home;
  delete process.env.MUSTER_AUTH_KEY;
  delete process.env.MUSTER_TOKEN;
});

const muster = (...args: string[]) => runCli(["token", ...args]);
const DAY = 86_400_000;

describe("muster token", () => {
  it("keygen, create, inspect: the token verifies with the key and with its .pub", async () => {
    const keygen = await muster("keygen");
    assert.equal(keygen.code, 0, keygen.err);
    const keyPath = join(home, "auth.key");
    const key = loadKeyFile(keyPath);
    assert.equal(
      keygen.out,
      `wrote ed25519 key ${keyPath}\nfingerprint ${key.fingerprint}\npublic key ${keyPath}.pub (for servers that only verify tokens)\n`,
    );
    assert.equal(statSync(keyPath).mode & 0o777, 0o600);
    assert.ok(
      !keygen.out.includes(readFileSync(keyPath, "utf8").split("\n")[1]!),
      "the key is never printed",
    );

    const create = await muster(
      "create",
      "--name",
      "web-1",
      "--role",
      "agent",
      "--label",
      "role=web",
      "--label",
      "zone=eu",
    );
    assert.equal(create.code, 0, create.err);
    assert.equal(create.err, "");
    const token = create.out.trim();
    assert.equal(create.out, `${token}\n`, "the token alone");
    const claims = await verifyToken(key, token);
    assert.deepEqual(
      { role: claims.role, subject: claims.subject, labels: claims.labels },
      { role: "agent", subject: "web-1", labels: { role: "web", zone: "eu" } },
    );
    assert.ok(
      Math.abs(claims.expiresAt! - claims.issuedAt - 30 * DAY) <= 1000,
      "30 days by default for agents",
    );

    const inspect = await muster("inspect", token);
    assert.equal(inspect.code, 0, inspect.err);
    assert.deepEqual(JSON.parse(inspect.out), { ...claims });
    assert.match(
      inspect.err,
      new RegExp(`^verified with ${keyPath} \\(ed25519, fingerprint ${key.fingerprint}\\); expires 20`),
    );
    assert.ok(!inspect.out.includes(token) && !inspect.err.includes(token), "the token is not printed back");

    const withPub = await muster("inspect", token, "--key", `${keyPath}.pub`);
    assert.equal(withPub.code, 0, withPub.err);
    assert.match(withPub.err, /^verified with .*auth\.key\.pub/);
  });

  it("create --json, the operator default lifetime, --ttl never, --methods", async () => {
    assert.equal((await muster("keygen")).code, 0);
    const op = await muster(
      "create",
      "--name",
      "alice",
      "--role",
      "operator",
      "--methods",
      "sys.*,deploy.*",
      "--json",
    );
    assert.equal(op.code, 0, op.err);
    const { token, claims } = JSON.parse(op.out);
    assert.deepEqual(claims, decodeTokenUnverified(token));
    assert.ok(
      Math.abs(claims.expiresAt! - claims.issuedAt - 12 * 3_600_000) <= 1000,
      "12 hours by default for operators",
    );
    assert.deepEqual(claims.methods, ["sys.*", "deploy.*"]);
    const never = await muster("create", "--name", "ci", "--role", "admin", "--ttl", "never", "--json");
    assert.equal(never.code, 0, never.err);
    assert.equal(JSON.parse(never.out).claims.expiresAt, null);
    const enrol = await muster("create", "--name", "edge-*", "--role", "enrol", "--ttl", "7d", "--json");
    const e = JSON.parse(enrol.out).claims;
    assert.ok(Math.abs(e.expiresAt - e.issuedAt - 7 * DAY) <= 1000);
  });

  it("revoke: a whole token or a bare id, appended once to the revocations file", async () => {
    assert.equal((await muster("keygen")).code, 0);
    const token = (await muster("create", "--name", "web-1", "--role", "agent")).out.trim();
    const { id } = decodeTokenUnverified(token);
    const file = join(home, "revoked.txt");
    const first = await muster("revoke", token, "--reason", "laptop lost");
    assert.equal(first.code, 0, first.err);
    assert.match(
      first.out,
      new RegExp(`^revoked token ${id} \\(agent web-1, expires 20.*\\) in ${file}\\n$`),
    );
    assert.ok(!first.out.includes(token));
    assert.match(
      readFileSync(file, "utf8"),
      new RegExp(`^${id} 20\\d\\d-\\d\\d-\\d\\dT[0-9:.]+Z laptop lost\\n$`),
    );

    const again = await muster("revoke", id);
    assert.equal(again.code, 0, again.err);
    assert.equal(again.out, `token ${id} was already revoked in ${file}\n`);
    assert.equal(readFileSync(file, "utf8").split("\n").length, 2, "still one line");

    const other = join(home, "elsewhere", "revoked.txt");
    const bare = await muster("revoke", "Qm9vYmFyYmF6cXV4MTIz", "--revocations", other);
    assert.equal(bare.code, 0, bare.err);
    assert.match(readFileSync(other, "utf8"), /^Qm9vYmFyYmF6cXV4MTIz \S+\n$/);

    const bad = await muster("revoke", "not an id");
    assert.equal(bad.code, 2);
    assert.match(bad.err, /not a token or a token id/);
  });

  it("inspect - and revoke - read the token from standard input", async () => {
    assert.equal((await muster("keygen")).code, 0);
    const token = (await muster("create", "--name", "web-1", "--role", "agent")).out.trim();
    const piped = (...args: string[]) =>
      spawnSync(process.execPath, [CLI, "token", ...args], { input: `${token}\n`, encoding: "utf8" });
    const inspect = piped("inspect", "-");
    assert.equal(inspect.status, 0, inspect.stderr);
    assert.equal(JSON.parse(inspect.stdout).subject, "web-1");
    const revoke = piped("revoke", "-");
    assert.equal(revoke.status, 0, revoke.stderr);
    assert.match(
      readFileSync(join(home, "revoked.txt"), "utf8"),
      new RegExp(`^${decodeTokenUnverified(token).id} `),
    );
  });

  it("create --out writes the token with mode 0600, never replacing a file without --force", async () => {
    assert.equal((await muster("keygen")).code, 0);
    const file = join(home, "web-1.token");
    const made = await muster("create", "--name", "web-1", "--role", "agent", "--out", file);
    assert.equal(made.code, 0, made.err);
    assert.equal(made.out, "", "nothing on standard output");
    assert.match(made.err, /token written to .*web-1\.token \(mode 0600\), id /);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const token = readFileSync(file, "utf8").trim();
    assert.equal(decodeTokenUnverified(token).subject, "web-1");
    const again = await muster("create", "--name", "web-2", "--role", "agent", "--out", file);
    assert.equal(again.code, 2);
    assert.match(again.err, /--out: .*web-1\.token exists: give another file, or --force to replace it/);
    assert.equal(readFileSync(file, "utf8").trim(), token, "the file is untouched");
    writeFileSync(file, "old", { mode: 0o644 });
    const forced = await muster("create", "--name", "web-2", "--role", "agent", "--out", file, "--force");
    assert.equal(forced.code, 0, forced.err);
    assert.equal(decodeTokenUnverified(readFileSync(file, "utf8").trim()).subject, "web-2");
    assert.equal(statSync(file).mode & 0o777, 0o600, "a replaced file is 0600 too");
  });

  it("keygen refuses to overwrite without --force; --force makes a new key", async () => {
    const first = await muster("keygen");
    const fingerprint = loadKeyFile(join(home, "auth.key")).fingerprint;
    assert.equal(first.code, 0);
    const refused = await muster("keygen");
    assert.equal(refused.code, 1);
    assert.match(refused.err, /auth\.key already exists: not overwritten\. --force replaces it/);
    assert.equal(loadKeyFile(join(home, "auth.key")).fingerprint, fingerprint);
    const forced = await muster("keygen", "--force");
    assert.equal(forced.code, 0, forced.err);
    assert.notEqual(loadKeyFile(join(home, "auth.key")).fingerprint, fingerprint);
  });

  it("keygen --alg hmac writes a secret line and no .pub; its tokens verify", async () => {
    const path = join(home, "hmac", "secret.key");
    const keygen = await muster("keygen", "--alg", "hmac", "--key", path);
    assert.equal(keygen.code, 0, keygen.err);
    const secret = readFileSync(path, "utf8");
    assert.match(secret, /^muster-hmac-v1:[A-Za-z0-9_-]{43}\n$/);
    assert.ok(!keygen.out.includes(secret.trim().slice(15)), "the secret is never printed");
    assert.doesNotMatch(keygen.out, /public key/);
    assert.throws(() => statSync(`${path}.pub`));
    const token = (await muster("create", "--name", "ci", "--role", "admin", "--key", path)).out.trim();
    const inspect = await muster("inspect", token, "--key", path);
    assert.equal(inspect.code, 0, inspect.err);
    assert.match(inspect.err, /^verified with .*\(hmac, fingerprint [0-9a-f]{16}\)/);
  });

  it("inspect: a wrong key exits 1 saying why; no key says not verified; garbage exits 2", async () => {
    assert.equal((await muster("keygen")).code, 0);
    const token = (await muster("create", "--name", "web-1", "--role", "agent")).out.trim();
    const other = join(home, "other.key");
    assert.equal((await muster("keygen", "--key", other)).code, 0);
    const wrong = await muster("inspect", token, "--key", other);
    assert.equal(wrong.code, 1);
    assert.equal(JSON.parse(wrong.out).subject, "web-1", "the claims are printed all the same");
    assert.match(
      wrong.err,
      /^muster: does not verify with .*other\.key \(ed25519, fingerprint [0-9a-f]{16}\): token signature does not match this server's key\n$/,
    );

    rmSync(join(home, "auth.key"));
    const unverified = await muster("inspect", token);
    assert.equal(unverified.code, 0, unverified.err);
    assert.match(unverified.err, /^not verified: no key/);

    const garbage = await muster("inspect", "hello.world");
    assert.equal(garbage.code, 2);
    assert.match(garbage.err, /^muster: not a muster token: /);
  });

  it("refuses bad flags with exit status 2", async () => {
    assert.equal((await muster("keygen")).code, 0);
    const cases: [string[], RegExp][] = [
      [
        ["create", "--name", "x", "--role", "root"],
        /--role <role>' argument 'root' is invalid\. Allowed choices are agent, operator, admin, enrol/,
      ],
      [
        ["create", "--name", "x", "--role", "agent", "--label", "novalue"],
        /"novalue" is not a label: use key=value/,
      ],
      [
        ["create", "--name", "x", "--role", "agent", "--label", "k=v".padEnd(300, "v")],
        /label k value longer than 256 characters/,
      ],
      [
        ["create", "--name", "x", "--role", "agent", "--ttl", "soon"],
        /"soon" is not a lifetime: use never or a duration/,
      ],
      [["create", "--name", "x", "--role", "agent", "--ttl", "0s"], /--ttl must be above 0/],
      [["create", "--name", "x", "--role", "agent", "--ttl", "5000d"], /over 3650 days: use --ttl never/],
      [["create", "--role", "agent"], /required option '--name <name>' not specified/],
      [["create", "--name", "x"], /required option '--role <role>' not specified/],
      [["create", "--name", "bad name", "--role", "agent"], /token subject: name "bad name" is invalid/],
      [
        ["create", "--name", "alice", "--role", "operator", "--label", "a=b"],
        /labels are for agent and enrol tokens/,
      ],
      [
        ["create", "--name", "x", "--role", "agent", "--key", join(home, "missing.key")],
        /--key: no key file at .*missing\.key/,
      ],
      [
        ["create", "--name", "x", "--role", "agent", "--key", join(home, "auth.key.pub")],
        /is a public key: it verifies tokens but cannot sign/,
      ],
      [["keygen", "--alg", "rsa"], /Allowed choices are ed25519, hmac/],
    ];
    for (const [args, message] of cases) {
      const r = await muster(...args);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.err}`);
      assert.match(r.err, message, args.join(" "));
      assert.equal(r.out, "", `${args.join(" ")} prints nothing on standard output`);
    }
  });
});

describe("credentialFrom, in a real program", () => {
  const credentials = new URL("../src/cli/credentials.js", import.meta.url).href;
  const tokens = new URL("../src/auth/tokens.js", import.meta.url).href;
  // The program lives in a temporary directory: it imports commander by its resolved URL.
  const commander = import.meta.resolve("commander");
  const program = join(root, "credential.mjs");
  writeFileSync(
    program,
    `import { Command } from ${JSON.stringify(commander)};
import { withCredentialOptions, credentialFrom } from ${JSON.stringify(credentials)};
import { decodeTokenUnverified } from ${JSON.stringify(tokens)};
const cmd = withCredentialOptions(new Command("t")).exitOverride();
cmd.parse(process.argv);
const token = await credentialFrom(cmd.opts());
if (token === undefined) process.stdout.write("none\\n");
else if (token.includes(".")) process.stdout.write(JSON.stringify(decodeTokenUnverified(token)) + "\\n");
else process.stdout.write(token + "\\n");
`,
  );
  const run = async (args: string[], env: Record<string, string> = {}) => {
    Object.assign(process.env, env);
    const p = startScript(program, args);
    const code = await p.exited;
    for (const k of Object.keys(env)) delete process.env[k];
    return { code, out: p.out, err: p.err };
  };

  it("takes --token, $MUSTER_TOKEN or --token-file, refusing two at once", async () => {
    assert.deepEqual(await run(["--token", " abc "]), { code: 0, out: "abc\n", err: "" });
    assert.deepEqual(await run([], { MUSTER_TOKEN: "fromenv" }), { code: 0, out: "fromenv\n", err: "" });
    const file = join(root, "t.token");
    writeFileSync(file, "  filed\n");
    assert.deepEqual(await run(["--token-file", file]), { code: 0, out: "filed\n", err: "" });
    const both = await run(["--token", "a", "--token-file", file]);
    assert.equal(both.code, 2);
    assert.match(both.err, /--token \(or \$MUSTER_TOKEN\) and --token-file both give a token/);
    const missing = await run(["--token-file", join(root, "nope")]);
    assert.equal(missing.code, 2);
    assert.match(missing.err, /^muster: --token-file: cannot read .*nope: ENOENT/);
    const empty = await run(["--token", " "]);
    assert.equal(empty.code, 2);
  });

  it("without a token: mints a 10-minute admin token from a readable key, else gives none", async () => {
    assert.deepEqual(await run([]), { code: 0, out: "none\n", err: "" });
    assert.equal((await muster("keygen")).code, 0);
    const minted = await run([]);
    assert.equal(minted.code, 0, minted.err);
    const claims = JSON.parse(minted.out);
    assert.equal(claims.role, "admin");
    assert.match(claims.subject, /^.+@.+$/);
    assert.ok(Math.abs(claims.expiresAt - claims.issuedAt - 10 * 60_000) <= 1000);
    const explicit = await run(["--key", join(home, "nope.key")]);
    assert.equal(explicit.code, 2);
    assert.match(explicit.err, /^muster: --key: cannot read key file .*nope\.key: ENOENT/);
    const pub = await run(["--key", join(home, "auth.key.pub")]);
    assert.equal(pub.code, 2);
    assert.match(pub.err, /is a public key/);
  });
});

describe("docs/cli.md", () => {
  const doc = readFileSync(new URL("../../docs/cli.md", import.meta.url), "utf8");
  const section = (title: string): string => {
    const start = doc.indexOf(`\n${title}\n`);
    assert.ok(start >= 0, `docs/cli.md has a "${title}" section`);
    const rest = doc.slice(start + title.length + 2);
    const end = rest.search(/^##+ /m);
    return end < 0 ? rest : rest.slice(0, end);
  };
  const flagsIn = (text: string): string[] =>
    [...new Set([...text.matchAll(/(?<![\w-])--[a-z][a-z0-9-]*/g)].map((m) => m[0]))].sort();

  it("documents every flag of every muster token subcommand, and no other", async () => {
    for (const sub of ["keygen", "create", "inspect", "revoke"]) {
      const help = await runCli(["token", sub, "--help"]);
      assert.equal(help.code, 0);
      const inHelp = flagsIn(help.out.split("\nOptions:")[1] ?? "").filter((f) => f !== "--help");
      const inDocs = flagsIn(section(`### muster token ${sub}`));
      assert.deepEqual(inDocs, inHelp, `muster token ${sub}`);
    }
  });
});
