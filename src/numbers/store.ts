/**
 * Stateful sessions: in memory, and with `stateDir` also on disk, one small JSON file per
 * session replaced atomically (write, fsync, rename, fsync the directory). The server saves a
 * session before sending the message it counts, so after a crash the stored `sentCount` is
 * never behind what a client received, and CONTINUE still finds the client's position.
 *
 * A session is forgotten `expiryMs` after its last activity, timed from the stored wall-clock
 * time, so a restart neither extends nor shortens the deadline. A session being streamed does
 * not expire: its stream is active every tick.
 */
import { mkdir, open, readdir, readFile, rename, unlink } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "../internal/logger.js";
import { parseUuid } from "./commands.js";
import { CHECKSUM_MOD, checksumAt, MAX_N, sessionSeed } from "./sequence.js";

/** What is stored of a session. */
export interface SessionRecord {
  uuid: string;
  n: number;
  /** Messages sent, 0..n+1; n+1 once the checksum message went out. */
  sentCount: number;
  /** The checksum over values 1..min(sentCount, n). */
  checksum: number;
  /** Wall-clock time (ms since the epoch) of the last activity. */
  lastActivity: number;
}

/** The stream streaming a session; a CONTINUE elsewhere takes the session from it. */
export interface SessionOwner {
  evict(reason: string): void;
}

export class Session implements SessionRecord {
  readonly seed: bigint;
  owner: SessionOwner | null = null;
  timer: NodeJS.Timeout | undefined;

  constructor(
    readonly uuid: string,
    public n: number,
    public sentCount: number,
    public checksum: number,
    public lastActivity: number,
  ) {
    this.seed = sessionSeed(uuid);
  }

  get complete(): boolean {
    return this.sentCount === this.n + 1;
  }

  record(): SessionRecord {
    const { uuid, n, sentCount, checksum, lastActivity } = this;
    return { uuid, n, sentCount, checksum, lastActivity };
  }
}

export interface SessionStoreOptions {
  expiryMs: number;
  /** Where sessions are kept across restarts; absent: in memory only, as the seed. */
  stateDir?: string | undefined;
  logger: Logger;
  /** Wall clock, for tests. @default Date.now */
  now?: () => number;
}

const FILE_SUFFIX = ".json";

function isRecord(v: unknown, uuid: string): v is SessionRecord {
  if (typeof v !== "object" || v === null) return false;
  const r = v as Record<string, unknown>;
  const int = (x: unknown): x is number => Number.isSafeInteger(x);
  return (
    r.uuid === uuid &&
    int(r.n) &&
    r.n >= 1 &&
    r.n <= MAX_N &&
    int(r.sentCount) &&
    r.sentCount >= 0 &&
    r.sentCount <= r.n + 1 &&
    int(r.checksum) &&
    r.checksum >= 0 &&
    r.checksum < CHECKSUM_MOD &&
    typeof r.lastActivity === "number" &&
    Number.isFinite(r.lastActivity)
  );
}

export class SessionStore {
  readonly #sessions = new Map<string, Session>();
  /** Per uuid, the disk operations in order, so a write never overtakes an earlier one. */
  readonly #io = new Map<string, Promise<void>>();
  readonly #o: SessionStoreOptions;
  readonly #now: () => number;
  #closed = false;

  private constructor(o: SessionStoreOptions) {
    this.#o = o;
    this.#now = o.now ?? Date.now;
  }

  /** A store, with the sessions of `stateDir` loaded (expired ones deleted). */
  static async open(o: SessionStoreOptions): Promise<SessionStore> {
    const store = new SessionStore(o);
    if (o.stateDir !== undefined) await store.#load(o.stateDir);
    return store;
  }

  get size(): number {
    return this.#sessions.size;
  }

  get(uuid: string): Session | undefined {
    return this.#sessions.get(uuid);
  }

  /** A new session (or a fresh start of a finished one), in memory until `commit`. */
  create(uuid: string, n: number): Session {
    const old = this.#sessions.get(uuid);
    if (old) clearTimeout(old.timer);
    const s = new Session(uuid, n, 0, 0, this.#now());
    this.#sessions.set(uuid, s);
    return s;
  }

  /** Marks activity and saves the session; resolves once it is durable (with `stateDir`). */
  commit(s: Session): Promise<void> {
    s.lastActivity = this.#now();
    if (!s.owner) this.#arm(s);
    const dir = this.#o.stateDir;
    if (dir === undefined) return Promise.resolve();
    const record = s.record();
    return this.#queue(s.uuid, () => writeDurably(dir, record));
  }

  attach(s: Session, owner: SessionOwner): void {
    s.owner = owner;
    clearTimeout(s.timer);
    s.timer = undefined;
  }

  /** The stream is gone: the expiry clock runs from the last activity. */
  detach(s: Session, owner: SessionOwner): void {
    if (s.owner !== owner) return;
    s.owner = null;
    if (this.#sessions.get(s.uuid) === s) this.#arm(s);
  }

  /** Stops every expiry timer and waits for the disk. Sessions stay on disk. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const s of this.#sessions.values()) clearTimeout(s.timer);
    await Promise.all(this.#io.values());
  }

  #arm(s: Session): void {
    clearTimeout(s.timer);
    if (this.#closed) return;
    const wait = Math.max(0, s.lastActivity + this.#o.expiryMs - this.#now());
    s.timer = setTimeout(() => this.#expire(s), wait);
    s.timer.unref();
  }

  #expire(s: Session): void {
    if (this.#sessions.get(s.uuid) !== s || s.owner) return;
    this.#sessions.delete(s.uuid);
    this.#o.logger.info({ uuid: s.uuid, sent: s.sentCount, n: s.n }, "session expired");
    const dir = this.#o.stateDir;
    if (dir !== undefined)
      void this.#queue(s.uuid, () => removeFile(join(dir, s.uuid + FILE_SUFFIX))).catch((err: Error) =>
        this.#o.logger.warn({ uuid: s.uuid, err: err.message }, "cannot delete an expired session"),
      );
  }

  #queue(uuid: string, op: () => Promise<void>): Promise<void> {
    const done = (this.#io.get(uuid) ?? Promise.resolve()).then(op);
    const settled = done.catch(() => {});
    this.#io.set(uuid, settled);
    void settled.then(() => {
      if (this.#io.get(uuid) === settled) this.#io.delete(uuid);
    });
    return done;
  }

  async #load(dir: string): Promise<void> {
    await mkdir(dir, { recursive: true });
    const now = this.#now();
    for (const name of await readdir(dir)) {
      const path = join(dir, name);
      // A write cut short by a crash: its rename never happened, the previous file stands.
      if (name.endsWith(`${FILE_SUFFIX}.tmp`)) {
        await removeFile(path);
        continue;
      }
      if (!name.endsWith(FILE_SUFFIX)) continue;
      const uuid = parseUuid(name.slice(0, -FILE_SUFFIX.length));
      let record: unknown;
      try {
        record = JSON.parse(await readFile(path, "utf8"));
      } catch (err) {
        this.#o.logger.warn(
          { file: name, err: (err as Error).message },
          "skipping an unreadable session file",
        );
        continue;
      }
      if (uuid === undefined || !isRecord(record, uuid)) {
        this.#o.logger.warn({ file: name }, "skipping a session file that is not a valid session");
        continue;
      }
      if (record.lastActivity + this.#o.expiryMs <= now) {
        await removeFile(path);
        continue;
      }
      const s = new Session(uuid, record.n, record.sentCount, 0, record.lastActivity);
      // Recomputed rather than trusted: the numbers are a function of the uuid.
      s.checksum = checksumAt(s.seed, Math.min(s.sentCount, s.n));
      this.#sessions.set(uuid, s);
      this.#arm(s);
    }
    if (this.#sessions.size > 0)
      this.#o.logger.info({ sessions: this.#sessions.size, dir }, "sessions restored");
  }
}

async function writeDurably(dir: string, record: SessionRecord): Promise<void> {
  const file = join(dir, record.uuid + FILE_SUFFIX);
  const tmp = `${file}.tmp`;
  const fh = await open(tmp, "w");
  try {
    await fh.writeFile(`${JSON.stringify(record)}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
  await syncDirectory(dir);
}

/** Makes a rename durable; some platforms cannot open a directory, and lose nothing by it. */
async function syncDirectory(dir: string): Promise<void> {
  let fh: Awaited<ReturnType<typeof open>> | undefined;
  try {
    fh = await open(dir, "r");
    await fh.sync();
  } catch {
    // Not supported here (Windows); the rename is still atomic.
  } finally {
    await fh?.close();
  }
}

async function removeFile(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
}
