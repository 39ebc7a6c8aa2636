// A hostile peer over a real TCP socket: it writes one HELLO (as any dialer could) and reads
// what the server answers, without any of the agent's good manners (no backoff, no retry hint
// honoured). Tests of the handshake's authentication use it to play attackers.
import { connect } from "node:net";
import { decodeFrame, encodeFrame } from "../../src/wire/codec.js";
import { type CloseBody, type Frame, FrameType, type HelloBody } from "../../src/wire/frame.js";
import { LengthPrefixDecoder, lengthPrefix } from "../../src/wire/length-prefix.js";

/** What the server answered one HELLO. */
export type Answer =
  | { kind: "welcome"; auth: string | undefined }
  | ({ kind: "close" } & CloseBody)
  /** Neither within `ms`: the server hung (or crashed the handshake). */
  | { kind: "silent" }
  | { kind: "error"; message: string };

export interface HelloOptions {
  /** The local address to dial from (any of 127.0.0.0/8 reaches a loopback listener). */
  from?: string;
  /** How long to wait for an answer. @default 10000 */
  ms?: number;
}

/** Dials `port` on 127.0.0.1, sends `hello` and resolves with the server's first frame. */
export function sendHello(port: number, hello: HelloBody, o: HelloOptions = {}): Promise<Answer> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port, ...(o.from ? { localAddress: o.from } : {}) });
    const decoder = new LengthPrefixDecoder(1024 * 1024);
    let done = false;
    const finish = (a: Answer): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(a);
    };
    const timer = setTimeout(() => finish({ kind: "silent" }), o.ms ?? 10_000);
    socket.on("connect", () => {
      socket.write(lengthPrefix(encodeFrame({ type: FrameType.HELLO, seq: 0, ack: 0, hello })));
    });
    socket.on("data", (chunk: Buffer) => {
      try {
        decoder.push(chunk, (bytes) => {
          const f: Frame = decodeFrame(bytes);
          if (f.type === FrameType.WELCOME) finish({ kind: "welcome", auth: f.welcome.auth });
          else if (f.type === FrameType.CLOSE) finish({ kind: "close", ...f.close });
          else finish({ kind: "error", message: `unexpected frame type ${f.type}` });
        });
      } catch (err) {
        finish({ kind: "error", message: (err as Error).message });
      }
    });
    socket.on("error", (err) => finish({ kind: "error", message: err.message }));
    socket.on("close", () => finish({ kind: "error", message: "closed without an answer" }));
  });
}

/** Runs `work` over `items` with at most `width` in flight. */
export async function pool<T, R>(
  items: readonly T[],
  width: number,
  work: (item: T) => Promise<R>,
): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const runner = async (): Promise<void> => {
    for (let i = next++; i < items.length; i = next++) out[i] = await work(items[i]!);
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, runner));
  return out;
}

/** Records every unhandled rejection and uncaught exception of this process while installed. */
export function processGuard(): { faults: string[]; remove(): void } {
  const faults: string[] = [];
  const onRejection = (reason: unknown): void => {
    faults.push(`unhandledRejection: ${reason instanceof Error ? reason.message : String(reason)}`);
  };
  const onException = (err: Error): void => {
    faults.push(`uncaughtException: ${err.message}`);
  };
  process.on("unhandledRejection", onRejection);
  process.on("uncaughtException", onException);
  return {
    faults,
    remove() {
      process.off("unhandledRejection", onRejection);
      process.off("uncaughtException", onException);
    },
  };
}
