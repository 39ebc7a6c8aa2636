// `muster token list` through the built CLI: `token create` records what it signed (never the
// token) in issued.jsonl beside the key, mode 0600; `list` shows that key's tokens with whether
// each is revoked in the revocations file, hides expired ones without --all, reads a bounded
// part of a large ledger, and a token from the list is one a real server accepts.
import assert from "node:assert/strict";
import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parse } from "yaml";
import { freePort, type Proc, runCli, startCli } from "./support/cli.js";

interface Listed {
  id: string;
  role: string;
  subject: string;
  labels: Record<string, string>;
  methods?: string[];
  expiresAt: string | null;
  key: string;
  expired: boolean;
  revoked: boolean;
  reason?: string;
}

describe("muster token list", () => {
  const home = mkdtempSync(join(tmpdir(), "muster-token-list-"));
  const env = { MUSTER_HOME: home, MUSTER_AUTH_KEY: undefined, MUSTER_TOKEN: undefined };
  const muster = (...args: string[]) => runCli(args, 20_000, env);
  const ledger = join(home, "issued.jsonl");
  const tokens: Record<string, string> = {};
  const procs: Proc[] = [];

  const create = async (
    name: string,
    ...args: string[]
  ): Promise<{ id: string; expiresAt: number | null }> => {
    const r = await muster("token", "create", "--name", name, "--json", ...args);
    assert.equal(r.code, 0, r.err);
    const { token, claims } = JSON.parse(r.out) as {
      token: string;
      claims: { id: string; expiresAt: number | null };
    };
    tokens[name] = token;
    return claims;
  };
  const listJson = async (...args: string[]): Promise<Listed[]> => {
    const r = await muster("token", "list", "-o", "json", ...args);
    assert.equal(r.code, 0, r.err);
    return JSON.parse(r.out) as Listed[];
  };

  before(async () => {
    assert.equal((await muster("token", "keygen")).code, 0);
  });
  after(async () => {
    for (const p of procs) p.child.kill("SIGKILL");
    await Promise.all(procs.map((p) => p.exited));
    rmSync(home, { recursive: true, force: true });
  });

  it("nothing issued yet: says so, exit 0", async () => {
    const r = await muster("token", "list");
    assert.equal(r.code, 0, r.err);
    assert.match(
      r.out,
      /^no tokens signed with .*auth\.key \(fingerprint [0-9a-f]{16}\) are recorded in .*issued\.jsonl$/m,
    );
  });

  it("create records each token in issued.jsonl (mode 0600), never the token itself", async () => {
    await create("web-1", "--role", "agent", "--label", "role=web", "--label", "zone=eu");
    await create("alice", "--role", "operator", "--methods", "sys.*,deploy.*", "--ttl", "8h");
    await create("ci", "--role", "admin", "--ttl", "never");
    const out = await muster(
      "token",
      "create",
      "--name",
      "web-2",
      "--role",
      "agent",
      "--out",
      join(home, "web-2.token"),
    );
    assert.equal(out.code, 0, out.err);
    tokens["web-2"] = readFileSync(join(home, "web-2.token"), "utf8").trim();

    assert.equal(statSync(ledger).mode & 0o777, 0o600);
    const text = readFileSync(ledger, "utf8");
    const lines = text
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { subject: string; key: string });
    assert.deepEqual(
      lines.map((l) => l.subject),
      ["web-1", "alice", "ci", "web-2"],
    );
    for (const token of Object.values(tokens)) {
      assert.ok(!text.includes(token), "no token in the ledger");
      assert.ok(!text.includes(token.split(".")[2]!), "not even its signature");
    }
  });

  it("list: id, role, subject, labels, expiry, revoked; -o json, yaml and wide agree; no token printed", async () => {
    const text = await muster("token", "list");
    assert.equal(text.code, 0, text.err);
    assert.match(text.out, /^ID +ROLE +SUBJECT +LABELS +EXPIRES +REVOKED$/m);
    assert.match(text.out, /^\S{22} +agent +web-1 +role=web,zone=eu +\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ +no$/m);
    assert.match(text.out, /^\S{22} +admin +ci +- +never +no$/m);
    const list = await listJson();
    assert.deepEqual(
      list.map((t) => [t.subject, t.role, t.revoked, t.expired]),
      [
        ["web-1", "agent", false, false],
        ["alice", "operator", false, false],
        ["ci", "admin", false, false],
        ["web-2", "agent", false, false],
      ],
    );
    assert.deepEqual(list[0]!.labels, { role: "web", zone: "eu" });
    assert.deepEqual(list[1]!.methods, ["sys.*", "deploy.*"]);
    assert.equal(list[2]!.expiresAt, null);
    const alias = await muster("token", "list", "--json");
    assert.deepEqual(JSON.parse(alias.out), list);
    const yaml = await muster("token", "list", "-o", "yaml");
    assert.deepEqual(parse(yaml.out), list);
    const wide = await muster("token", "list", "-o", "wide");
    assert.match(wide.out, /^ID .* REVOKED +ISSUED +METHODS +BY +KEY +REVOKED AT +REASON$/m);
    assert.match(
      wide.out,
      new RegExp(`^${list[1]!.id} .* sys\\.\\*,deploy\\.\\* +\\S+@\\S+ +${list[1]!.key} +- +-$`, "m"),
    );
    for (const r of [text, alias, yaml, wide])
      for (const token of Object.values(tokens)) assert.ok(!r.out.includes(token), "no token printed");
  });

  it("REVOKED follows the revocations file (and --revocations names another)", async () => {
    const r = await muster("token", "revoke", tokens["web-1"]!, "--reason", "laptop lost");
    assert.equal(r.code, 0, r.err);
    const list = await listJson();
    const web1 = list.find((t) => t.subject === "web-1")!;
    assert.equal(web1.revoked, true);
    assert.equal(web1.reason, "laptop lost");
    assert.equal(list.filter((t) => t.revoked).length, 1);
    const text = await muster("token", "list");
    assert.match(text.out, /^\S{22} +agent +web-1 +role=web,zone=eu +\S+ +yes$/m);
    const other = join(home, "other-revoked.txt");
    writeFileSync(other, `${list.find((t) => t.subject === "ci")!.id} 2026-01-31T12:00:00Z rotated\n`);
    const elsewhere = await listJson("--revocations", other);
    assert.deepEqual(
      elsewhere.filter((t) => t.revoked).map((t) => [t.subject, t.reason]),
      [["ci", "rotated"]],
    );
  });

  it("expired tokens are hidden, and said to be, unless --all", async () => {
    const claims = await create("short", "--role", "operator", "--ttl", "1ms");
    // Wait (not a timing assertion) until the token has expired.
    while (Date.now() <= claims.expiresAt!) await new Promise((r) => setTimeout(r, 50));
    const text = await muster("token", "list");
    assert.doesNotMatch(text.out, / short /);
    assert.match(text.err, /\(1 expired token not shown: --all lists them\)/);
    const all = await muster("token", "list", "--all");
    assert.match(all.out, /^\S{22} +operator +short +- +\S+Z \(expired\) +no$/m);
    assert.deepEqual(
      (await listJson("--all")).filter((t) => t.expired).map((t) => t.subject),
      ["short"],
    );
  });

  it("--key lists that key's tokens only, from the ledger beside it", async () => {
    assert.equal((await muster("token", "keygen", "--key", join(home, "hmac.key"), "--alg", "hmac")).code, 0);
    await create("h-1", "--role", "agent", "--key", join(home, "hmac.key"));
    assert.deepEqual(
      (await listJson("--key", join(home, "hmac.key"))).map((t) => t.subject),
      ["h-1"],
    );
    assert.ok(!(await listJson()).some((t) => t.subject === "h-1"), "not a token of the default key");
    // The public half of the default key names the same tokens.
    assert.deepEqual(
      (await listJson("--key", join(home, "auth.key.pub"))).map((t) => t.subject),
      (await listJson()).map((t) => t.subject),
    );
    const missing = await muster("token", "list", "--key", join(home, "nope.key"));
    assert.equal(missing.code, 2);
    assert.match(missing.err, /--key: no key file at .*nope\.key/);
  });

  it("a line that is not a record is skipped and counted; a large ledger is read from its end", async () => {
    appendFileSync(ledger, "not json\n");
    const r = await muster("token", "list");
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /1 line\(s\) that are not token records skipped/);
    assert.match(r.out, / web-2 /);

    // 17 MiB of another key's records, then one of this key's: only the last 16 MiB are read.
    const first = readFileSync(ledger, "utf8").split("\n")[0]!;
    const filler = `${JSON.stringify({ ...JSON.parse(first), key: "0000000000000000" })}\n`;
    appendFileSync(ledger, filler.repeat(Math.ceil((17 * 2 ** 20) / filler.length)));
    await create("last", "--role", "agent");
    const big = await muster("token", "list");
    assert.equal(big.code, 0, big.err);
    assert.match(big.err, /issued\.jsonl is over 16MiB: only its last 16MiB \(the latest tokens\) read/);
    assert.match(big.out, / last /);
    assert.doesNotMatch(big.out, / web-2 /, "the records before the last 16 MiB are not read");
  });

  it("end to end: a listed token connects an agent; revoked in the file, the server ends it and the list says so", async () => {
    const listed = (await listJson()).find((t) => t.subject === "last");
    assert.ok(listed, "the token made last is listed");
    const port = await freePort();
    const ws = `ws://127.0.0.1:${port}`;
    const server = startCli(["server", "--listen", ws, "--auth-key", join(home, "auth.key")], env);
    procs.push(server);
    await server.waitFor("listening on");
    procs.push(startCli(["agent", "--server", ws, "--name", "last", "--token", tokens.last!], env));
    const stateOfLast = async (): Promise<string | undefined> => {
      const r = await muster("agents", "--server", ws, "-o", "json");
      assert.equal(r.code, 0, r.err);
      return (JSON.parse(r.out) as Array<{ name: string; state: string }>).find((a) => a.name === "last")
        ?.state;
    };
    const waitState = async (ok: (s: string | undefined) => boolean, what: string): Promise<void> => {
      const start = Date.now();
      while (!ok(await stateOfLast())) {
        if (Date.now() - start > 20_000) assert.fail(`agent last: ${what}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    await waitState((s) => s === "connected", "did not connect");
    // The server watches the same revocations file as the list reads.
    assert.equal((await muster("token", "revoke", listed.id, "--reason", "rotated")).code, 0);
    await waitState((s) => s !== "connected", "still connected after its token was revoked");
    const after = (await listJson()).find((t) => t.id === listed.id);
    assert.equal(after?.revoked, true);
    assert.equal(after?.reason, "rotated");
  });
});
