/**
 * A stateless GetNumbers call: `START` streams a random first value (1..255) and then each
 * value ×3 with uint64 wrap-around, one per tick, until `END`; `CONTINUE <x>` streams from
 * x·3, the value after the last one a client received.
 */
import type { Logger } from "../internal/logger.js";
import { parseStatelessCommand } from "./commands.js";
import { Conversation, type NumbersCall } from "./conversation.js";
import { dataReply } from "./proto.js";
import { firstStatelessValue, nextStatelessValue } from "./sequence.js";

export class StatelessConversation extends Conversation {
  /** The next value to send, once started. */
  #next: bigint | undefined;

  constructor(
    call: NumbersCall,
    tickMs: number,
    log: Logger,
    onOver: (c: Conversation) => void,
    private readonly random: (() => number) | undefined,
  ) {
    super(call, tickMs, log, onOver);
  }

  protected async command(text: string): Promise<void> {
    this.log.debug({ command: text }, "command");
    const parsed = parseStatelessCommand(text);
    if (!parsed.ok) return this.fail(parsed.error);
    const c = parsed.command;
    if (c.kind === "end") return this.finish();
    if (this.#next !== undefined)
      return this.fail("server was already running: this stream is already sending; send END to stop it");
    this.#next = c.kind === "start" ? firstStatelessValue(this.random) : nextStatelessValue(c.x);
    this.scheduleTick();
  }

  protected async tick(): Promise<void> {
    if (this.#next === undefined) return;
    const v = this.#next;
    this.#next = nextStatelessValue(v);
    await this.send(dataReply(v));
    this.scheduleTick();
  }

  protected clientEnded(): void {
    // No END can come any more: stop rather than stream for ever.
    this.finish();
  }

  protected released(): void {}
}
