/**
 * A stateful GetNumbers call: `START "<uuid>" <n>` streams values 1..n of the session, then
 * their checksum (n+1 messages), then ends with status OK. `CONTINUE <uuid> <last>` (or
 * `@<position>`) answers the client's position and the checksum up to it, as two data
 * messages, then goes on from the next message. The session is saved before each message
 * is sent (see store.ts).
 */
import { formatDuration } from "../chaos/units.js";
import type { Logger } from "../internal/logger.js";
import { parseStatefulCommand, type StatefulCommand } from "./commands.js";
import { Conversation, type NumbersCall } from "./conversation.js";
import { dataReply } from "./proto.js";
import { type ResumeRequest, resolveResume } from "./resume.js";
import { addToChecksum, valueAt } from "./sequence.js";
import type { Session, SessionOwner, SessionStore } from "./store.js";

export class StatefulConversation extends Conversation implements SessionOwner {
  #session: Session | undefined;
  /** A START or CONTINUE was accepted: any further one is an error, as in the seed. */
  #started = false;

  constructor(
    call: NumbersCall,
    tickMs: number,
    log: Logger,
    onOver: (c: Conversation) => void,
    private readonly store: SessionStore,
    private readonly expiryMs: number,
  ) {
    super(call, tickMs, log, onOver);
  }

  protected async command(text: string): Promise<void> {
    this.log.debug({ command: text }, "command");
    const parsed = parseStatefulCommand(text);
    if (!parsed.ok) return this.fail(parsed.error);
    if (this.#started)
      return this.fail(
        "server was already running: this stream has its session; open a new stream to START or CONTINUE another",
      );
    const c = parsed.command;
    return c.kind === "start" ? this.#start(c.uuid, c.n) : this.#continue(c);
  }

  async #start(uuid: string, n: number): Promise<void> {
    const old = this.store.get(uuid);
    if (old?.owner)
      return this.fail(`uuid already taken: session ${uuid} is being streamed to another client`);
    // The numbers depend on the uuid alone, so starting afresh an idle session with the same n,
    // or a finished one, sends what a new session would; the seed's client re-sends its START
    // after a drop that came before the first number.
    if (old && !old.complete && old.n !== n)
      return this.fail(
        `uuid already taken: session ${uuid} exists with n = ${old.n} (${old.sentCount} sent); CONTINUE it, or START another uuid`,
      );
    const s = this.store.create(uuid, n);
    this.#started = true;
    this.#own(s);
    if (!(await this.#save(s))) return;
    this.log.info({ uuid, n, restarted: old !== undefined }, "session started");
    this.scheduleTick();
  }

  async #continue(c: StatefulCommand & { kind: "continue" }): Promise<void> {
    const s = this.store.get(c.uuid);
    if (!s)
      return this.fail(
        `uuid has no session: ${c.uuid} (never started, or forgotten ${formatDuration(this.expiryMs)} after its last activity)`,
      );
    const request: ResumeRequest =
      "last" in c ? { last: c.last } : "position" in c ? { position: c.position } : { legacy: true };
    const at = resolveResume(s, (k) => valueAt(s.seed, k), request, s.uuid);
    if (!at.ok) return this.fail(at.error);
    if (s.owner && s.owner !== this) s.owner.evict(`session ${s.uuid} was continued on another stream`);
    this.#started = true;
    this.#own(s);
    s.sentCount = at.position;
    s.checksum = at.checksum;
    if (!(await this.#save(s))) return;
    this.log.info({ uuid: s.uuid, position: at.position, n: s.n }, "session continued");
    await this.send(dataReply(at.position));
    await this.send(dataReply(at.checksum));
    if (s.complete) this.finish();
    else this.scheduleTick();
  }

  protected async tick(): Promise<void> {
    const s = this.#session;
    if (!s || s.owner !== this) return;
    const k = s.sentCount + 1;
    if (k <= s.n) {
      const v = valueAt(s.seed, k);
      s.sentCount = k;
      s.checksum = addToChecksum(s.checksum, v);
      if (!(await this.#save(s)) || s.owner !== this) return;
      await this.send(dataReply(v));
      this.scheduleTick();
    } else {
      s.sentCount = s.n + 1;
      if (!(await this.#save(s)) || s.owner !== this) return;
      await this.send(dataReply(s.checksum));
      this.log.info({ uuid: s.uuid, n: s.n, checksum: s.checksum }, "session complete");
      this.finish();
    }
  }

  protected clientEnded(): void {
    // A client that half-closes before any command will send none: nothing to stream.
    if (!this.#started) this.finish();
  }

  protected released(): void {
    if (this.#session) this.store.detach(this.#session, this);
    this.#session = undefined;
  }

  evict(reason: string): void {
    if (this.#session) this.store.detach(this.#session, this);
    this.#session = undefined;
    void this.fail(reason);
  }

  #own(s: Session): void {
    this.#session = s;
    this.store.attach(s, this);
  }

  /** Saves before sending; on failure the client is told in band and the call ends. */
  async #save(s: Session): Promise<boolean> {
    try {
      await this.store.commit(s);
      return true;
    } catch (err) {
      this.log.error({ uuid: s.uuid, err: (err as Error).message }, "cannot save the session");
      await this.fail(`failed to store session: ${(err as Error).message}`);
      return false;
    }
  }
}
