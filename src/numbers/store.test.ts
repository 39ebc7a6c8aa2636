import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, it } from "node:test";
import { silentLogger } from "../internal/logger.js";
import { checksumAt, sessionSeed } from "./sequence.js";
import { SessionStore } from "./store.js";

const UUID = "a17417a0-aa39-40b5-8675-247713cc4908";
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "numbers-store-"));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function open(
  stateDir: string | undefined,
  expiryMs = 30_000,
  now?: () => number,
): Promise<SessionStore> {
  const store = await SessionStore.open({
    expiryMs,
    stateDir,
    logger: silentLogger,
    ...(now ? { now } : {}),
  });
  cleanups.push(() => store.close());
  return store;
}

const owner = { evict() {} };

describe("numbers: the session store", () => {
  it("keeps a session on disk and restores it, checksum recomputed, in another store", async () => {
    const dir = await tempDir();
    const a = await open(dir);
    const s = a.create(UUID, 10);
    a.attach(s, owner);
    s.sentCount = 4;
    s.checksum = checksumAt(s.seed, 4);
    await a.commit(s);
    await a.close();
    assert.deepEqual(await readdir(dir), [`${UUID}.json`]);
    const stored = JSON.parse(await readFile(join(dir, `${UUID}.json`), "utf8"));
    assert.equal(stored.sentCount, 4);

    const b = await open(dir);
    const r = b.get(UUID)!;
    assert.equal(r.n, 10);
    assert.equal(r.sentCount, 4);
    assert.equal(r.checksum, checksumAt(sessionSeed(UUID), 4));
  });

  it("drops expired sessions and half-written files on open, and skips bad files", async () => {
    const dir = await tempDir();
    const old = { uuid: UUID, n: 5, sentCount: 2, checksum: 0, lastActivity: Date.now() - 60_000 };
    await writeFile(join(dir, `${UUID}.json`), JSON.stringify(old));
    await writeFile(join(dir, `${UUID}.json.tmp`), "{");
    const other = "b17417a0-aa39-40b5-8675-247713cc4908";
    await writeFile(join(dir, `${other}.json`), JSON.stringify({ ...old, uuid: other, n: 0 }));
    const store = await open(dir, 30_000);
    assert.equal(store.size, 0);
    assert.deepEqual(await readdir(dir), [`${other}.json`]);
  });

  it("forgets a detached session exactly expiryMs after its last activity, restored ones too", async () => {
    const dir = await tempDir();
    const a = await open(dir, 300);
    const s = a.create(UUID, 5);
    a.attach(s, owner);
    await a.commit(s);
    await sleep(400);
    assert.ok(a.get(UUID), "a session being streamed does not expire");
    a.detach(s, owner);
    await sleep(50);
    assert.ok(!a.get(UUID), "detached long after its last activity: expired at once");
    assert.deepEqual(await readdir(dir), []);

    const t = a.create(UUID, 5);
    await a.commit(t);
    await a.close();
    const b = await open(dir, 300);
    assert.ok(b.get(UUID));
    await sleep(150);
    assert.ok(b.get(UUID), "restored with the time it had left");
    await sleep(250);
    assert.ok(!b.get(UUID), "expired at lastActivity + expiryMs");
  });

  it("works in memory without a directory", async () => {
    const store = await open(undefined, 100);
    const s = store.create(UUID, 3);
    await store.commit(s);
    assert.equal(store.size, 1);
    await sleep(200);
    assert.equal(store.size, 0);
  });
});
