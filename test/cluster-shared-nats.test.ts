// A revocation reaches every server of a cluster, through the real CLI over a real nats-server:
// two `muster server --cluster … --auth-key K` processes (each with its own revocations file,
// so that nothing but the cluster carries it), an agent holding a session on s2, and
// `muster token revoke T --server <admin of s1>`: the session on s2 ends and s2 refuses the
// token from then on. The rest of the shared state is tested on the in-memory backplane
// (cluster-shared.test.ts).
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, it } from "node:test";
import { generateKeyFile } from "../src/auth/keys.js";
import { decodeTokenUnverified, issueToken } from "../src/auth/tokens.js";
import type { AgentInfo } from "../src/presence/presence.js";
import { freePort, type Proc, runCli, startCli } from "./support/cli.js";
import { type NatsServer, natsServerMissing, startNatsServer } from "./support/nats-server.js";

const skip = natsServerMissing();
const home = mkdtempSync(join(tmpdir(), "muster-shared-nats-"));
const env = { MUSTER_HOME: home, MUSTER_TOKEN: undefined, MUSTER_AUTH_KEY: undefined };
const procs: Proc[] = [];
let nats: NatsServer | undefined;
after(async () => {
  for (const p of procs) p.child.kill("SIGKILL");
  await nats?.stop();
  rmSync(home, { recursive: true, force: true });
});

const start = (args: string[]): Proc => {
  const p = startCli(args, env);
  procs.push(p);
  return p;
};
const cli = (args: string[]) => runCli(args, 20_000, env);

async function eventually<T>(what: string, fn: () => Promise<T | undefined>, ms = 20_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() - t0 > ms) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function get(url: string, token: string): Promise<{ status: number; body: string }> {
  const res = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, body: await res.text() };
}

it("nats: muster token revoke --server <s1> ends the token's session on s2, and s2 refuses it from then on", {
  skip,
}, async () => {
  nats = await startNatsServer();
  const key = join(home, "cluster.key");
  // Keys and tokens made in-process (muster token is tested elsewhere): each CLI start costs.
  const signing = generateKeyFile(key, "EdDSA");
  const server = async (name: string) => {
    const port = await freePort();
    const p = start([
      "server",
      "--name",
      name,
      "--cluster",
      nats!.url,
      "--auth-key",
      key,
      "--revocations",
      join(home, `${name}-revoked.txt`),
      "--listen",
      `ws://127.0.0.1:${port}`,
      "--admin",
      "127.0.0.1:0",
      "--log-json",
    ]);
    await p.waitFor(/admin on (http:\/\/\S+)/, 15_000);
    return { proc: p, ws: `ws://127.0.0.1:${port}`, admin: /admin on (http:\/\/\S+)/.exec(p.out)![1]! };
  };
  const [s1, s2] = await Promise.all([server("s1"), server("s2")]);
  const operator = await issueToken(signing, { role: "operator", subject: "olga", ttlMs: 3_600_000 });
  const agentToken = await issueToken(signing, { role: "agent", subject: "web-1", ttlMs: 3_600_000 });
  const id = decodeTokenUnverified(agentToken).id;
  const tokenFile = join(home, "web-1.token");
  writeFileSync(tokenFile, agentToken);
  const agent = start([
    "agent",
    "--server",
    s2.ws,
    "--name",
    "web-1",
    "--token-file",
    tokenFile,
    "--log-json",
  ]);
  const listed = async (admin: string): Promise<AgentInfo | undefined> => {
    const r = await get(`${admin}/api/agents/web-1`, operator);
    return r.status === 200 ? (JSON.parse(r.body) as AgentInfo) : undefined;
  };
  // s1 sees web-1 through the cluster, held by s2.
  await eventually("s1 to list web-1 on s2", async () => {
    const a = await listed(s1.admin);
    return a?.state === "connected" && a.server === "s2" ? a : undefined;
  });

  // On s1's machine: an admin token signed with the key (--key), the id sent to s1's admin API.
  const revoke = await cli([
    "token",
    "revoke",
    agentToken,
    "--server",
    s1.admin,
    "--key",
    key,
    "--reason",
    "laptop lost",
  ]);
  assert.equal(revoke.code, 0, revoke.err);
  assert.match(
    revoke.out,
    new RegExp(
      `^revoked token ${id} \\(agent web-1, expires \\S+\\) through ${s1.admin.replaceAll(".", "\\.")}: in force on every server of its cluster\\n$`,
    ),
  );

  // The session on s2 ends, saying why…
  const ended = await eventually("web-1's session on s2 to end", async () => {
    const a = await listed(s2.admin);
    return a?.state === "offline" ? a : undefined;
  });
  assert.match(ended.disconnectReason ?? "", new RegExp(`its token ${id} was revoked`));
  // …and s2 refuses the token from then on: the agent keeps trying there, and is told why.
  await eventually("s2 to refuse the agent", async () =>
    agent.err
      .split("\n")
      .find(
        (l) =>
          l.includes(`"url":"${s2.ws}"`) &&
          l.includes("the server refused this agent") &&
          l.includes(`token ${id} was revoked`),
      ),
  );
  const failures = await eventually("s2 to count a refusal of the revoked token", async () => {
    const m = await get(`${s2.admin}/metrics`, operator);
    const n = /muster_auth_failures_total\{reason="revoked"\} (\d+)/.exec(m.body)?.[1];
    return n !== undefined && Number(n) > 0 ? Number(n) : undefined;
  });
  assert.ok(failures > 0);

  // s2 lists it as the cluster's, with who and why; only s1 wrote it to its own file.
  const list = JSON.parse((await get(`${s2.admin}/api/revocations`, operator)).body) as {
    revocations: Array<{ id: string; source: string; reason?: string; by?: string }>;
  };
  assert.deepEqual(
    list.revocations.map((r) => [r.id, r.source, r.reason]),
    [[id, "cluster", "laptop lost"]],
  );
  assert.match(list.revocations[0]!.by ?? "", /@/, "the subject of the locally signed admin token");
  assert.match(
    readFileSync(join(home, "s1-revoked.txt"), "utf8"),
    new RegExp(`^${id} \\S+ laptop lost$`, "m"),
  );
  assert.throws(() => readFileSync(join(home, "s2-revoked.txt"), "utf8"), /ENOENT/);

  // A server without a revocation list answers a clear error; an operator may not revoke.
  const denied = await cli(["token", "revoke", id, "--server", s2.admin, "--token", operator]);
  assert.equal(denied.code, 1);
  assert.match(denied.err, /POST \/api\/revocations: 403 permission_denied: .*needs the admin role/);

  for (const p of [agent, s1.proc, s2.proc]) p.child.kill("SIGTERM");
  await Promise.all([agent.exited, s1.proc.exited, s2.proc.exited]);
});
