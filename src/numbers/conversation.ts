/**
 * One GetNumbers call on the server. Commands and ticks run one at a time, in arrival order,
 * through a queue: every command is processed (the seed kept only the latest in a single
 * slot, dropping any sent within a tick of another), and a tick never interleaves with a
 * command half-done. Whatever way the call ends, the tick timer is cleared and `released()`
 * runs once.
 */
import type { ServerDuplexStream } from "@grpc/grpc-js";
import type { Logger } from "../internal/logger.js";
import { type CommsReply, type CommsRequest, errorReply } from "./proto.js";

export type NumbersCall = ServerDuplexStream<CommsRequest, CommsReply>;

export abstract class Conversation {
  #queue: Promise<void> = Promise.resolve();
  #tick: NodeJS.Timeout | undefined;
  #over = false;

  protected constructor(
    protected readonly call: NumbersCall,
    protected readonly tickMs: number,
    protected readonly log: Logger,
    private readonly onOver: (c: Conversation) => void,
  ) {
    call.on("data", (req: CommsRequest) => this.#enqueue(() => this.command(req.message ?? "")));
    call.on("end", () => this.#enqueue(() => this.clientEnded()));
    call.on("cancelled", () => this.#stop("the client went away"));
    call.on("close", () => this.#stop("the call closed"));
    call.on("error", (err: Error) => this.#stop(`call error: ${err.message}`));
  }

  /** A command from the client. */
  protected abstract command(text: string): Promise<void> | void;
  /** The tick is due: send the next message, then `scheduleTick()` if more are to come. */
  protected abstract tick(): Promise<void> | void;
  /** The client half-closed: it will send no more commands. */
  protected abstract clientEnded(): void;
  /** The call is over, however it ended: give back what it held. Runs once. */
  protected abstract released(): void;

  get over(): boolean {
    return this.#over;
  }

  /** Gives back what the call holds, before the server cancels every call on closing. */
  abort(): void {
    this.#stop("the server is closing");
  }

  protected scheduleTick(): void {
    clearTimeout(this.#tick);
    if (this.#over) return;
    this.#tick = setTimeout(() => this.#enqueue(() => this.tick()), this.tickMs);
  }

  /** Writes a reply, waiting while the client is not reading. */
  protected async send(reply: CommsReply): Promise<void> {
    if (this.#over) return;
    if (this.call.write(reply)) return;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        this.call.off("drain", done);
        this.call.off("close", done);
        resolve();
      };
      this.call.on("drain", done);
      this.call.on("close", done);
    });
  }

  /** A protocol error: in band, then the end of the call with status OK (as the seed). */
  protected async fail(message: string): Promise<void> {
    this.log.info({ error: message }, "protocol error");
    await this.send(errorReply(message));
    this.finish();
  }

  /** Ends the call with status OK. */
  protected finish(): void {
    if (this.#over) return;
    this.call.end();
    this.#stop("finished");
  }

  #enqueue(task: () => Promise<void> | void): void {
    this.#queue = this.#queue
      .then(() => (this.#over ? undefined : task()))
      .catch((err: Error) => {
        this.log.error({ err: err.message }, "stream failed");
        this.#stop("internal error");
        this.call.destroy(err);
      });
  }

  #stop(why: string): void {
    if (this.#over) return;
    this.#over = true;
    clearTimeout(this.#tick);
    this.#tick = undefined;
    this.log.debug({ why }, "stream over");
    this.released();
    this.onOver(this);
  }
}
