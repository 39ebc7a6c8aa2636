import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import type { Clock } from "../internal/clock.js";
import type { Logger } from "../internal/logger.js";
import { dialUrl } from "../transport/dial.js";
import type { MemoryNetwork } from "../transport/memory.js";
import type { TlsClientOptions, Transport, TransportCloseInfo } from "../transport/types.js";
import { type DecodeLimits, decodeFrame, encodeFrame } from "../wire/codec.js";
import { describeFrame } from "../wire/describe.js";
import { type CloseBody, type Frame, FrameType, type HelloBody, type WelcomeBody } from "../wire/frame.js";

export interface GreetOptions {
  clock: Clock;
  logger: Logger;
  connectTimeoutMs: number;
  maxFrameBytes: number;
  /** Limits for decoding the server's WELCOME or CLOSE. @default DEFAULTS */
  decodeLimits?: DecodeLimits | undefined;
  tls?: TlsClientOptions | undefined;
  memory?: MemoryNetwork | undefined;
  signal?: AbortSignal | undefined;
  /** Frames after the WELCOME. */
  onFrame(transport: Transport, bytes: Uint8Array): void;
  /** The link closed after the WELCOME. */
  onClose(transport: Transport, info: TransportCloseInfo): void;
  /** The link drained its write buffer (after the WELCOME). */
  onDrain?(transport: Transport): void;
}

/** A link that completed its handshake. */
export interface GreetedLink {
  transport: Transport;
  /**
   * Starts delivering what arrived after the WELCOME (replayed frames may follow it at once)
   * to `onFrame`/`onClose`. Call it right after attaching the session to the transport.
   */
  release(): void;
  welcome: WelcomeBody;
  /** The server's ack in the WELCOME: the last seq it received in the resumed session. */
  serverAck: number;
}

/** A handshake refused by the server with a CLOSE frame. */
export class RefusedError extends MusterError {
  readonly close: CloseBody;
  constructor(close: CloseBody) {
    super(
      close.code === "rejected"
        ? ErrorCode.PERMISSION_DENIED
        : close.code === "unauthenticated"
          ? ErrorCode.UNAUTHENTICATED
          : ErrorCode.UNAVAILABLE,
      `server refused the connection (${close.code}): ${close.message}`,
    );
    this.close = close;
  }
}

/**
 * Dials `url`, sends HELLO (with `helloAck` in its header) and waits for WELCOME. Rejects
 * with UNAVAILABLE (dial failed, link closed), DEADLINE_EXCEEDED (no WELCOME in time),
 * PROTOCOL_ERROR, or a RefusedError carrying the server's CLOSE.
 */
export async function greet(
  url: string,
  hello: HelloBody,
  helloAck: number,
  o: GreetOptions,
): Promise<GreetedLink> {
  const abort = new AbortController();
  const timer = o.clock.setTimeout(
    () =>
      abort.abort(
        new MusterError(
          ErrorCode.DEADLINE_EXCEEDED,
          `no WELCOME from ${url} within ${o.connectTimeoutMs} ms`,
        ),
      ),
    o.connectTimeoutMs,
  );
  timer.unref();
  const onOuterAbort = (): void => abort.abort(new MusterError(ErrorCode.CANCELLED, "connect aborted"));
  o.signal?.addEventListener("abort", onOuterAbort, { once: true });
  const trace = o.logger.isLevelEnabled("trace");
  let transport: Transport | undefined;
  try {
    transport = await dialUrl(url, {
      signal: abort.signal,
      tls: o.tls,
      memory: o.memory,
      maxFrameBytes: o.maxFrameBytes,
      onFallback: (message) => o.logger.warn({ url }, message),
    });
    const t = transport;
    return await new Promise<GreetedLink>((resolve, reject) => {
      let greeted = false;
      // Frames (and a close) that arrive between the WELCOME and release() wait here, so that
      // frames replayed right behind the WELCOME reach the session once it is attached.
      let held: Uint8Array[] | undefined = [];
      let heldClose: TransportCloseInfo | undefined;
      const release = (): void => {
        const frames = held ?? [];
        held = undefined;
        for (const f of frames) o.onFrame(t, f);
        if (heldClose) o.onClose(t, heldClose);
      };
      const fail = (err: unknown): void => {
        if (greeted) return;
        greeted = true;
        t.close("normal", "handshake failed");
        reject(err);
      };
      abort.signal.addEventListener("abort", () => fail(abort.signal.reason), { once: true });
      t.setHandler({
        onFrame: (bytes) => {
          if (greeted) {
            if (held) held.push(bytes);
            else o.onFrame(t, bytes);
            return;
          }
          let frame: Frame;
          try {
            frame = decodeFrame(bytes, o.decodeLimits);
          } catch (err) {
            fail(MusterError.from(err, ErrorCode.PROTOCOL_ERROR));
            return;
          }
          if (trace) o.logger.trace({ dir: "in", frame: describeFrame(frame) }, "frame");
          if (frame.type === FrameType.WELCOME) {
            greeted = true;
            resolve({ transport: t, welcome: frame.welcome, serverAck: frame.ack, release });
          } else if (frame.type === FrameType.CLOSE) {
            fail(new RefusedError(frame.close));
          } else {
            fail(
              new MusterError(
                ErrorCode.PROTOCOL_ERROR,
                `expected WELCOME, got frame type 0x${frame.type.toString(16)}`,
              ),
            );
          }
        },
        onClose: (info) => {
          if (greeted) {
            if (held) heldClose = info;
            else o.onClose(t, info);
          } else
            fail(
              new MusterError(
                ErrorCode.UNAVAILABLE,
                `link to ${url} closed during the handshake: ${info.message}`,
              ),
            );
        },
        onDrain: () => {
          if (greeted) o.onDrain?.(t);
        },
      });
      const frame: Frame = { type: FrameType.HELLO, seq: 0, ack: helloAck, hello };
      if (trace) o.logger.trace({ dir: "out", frame: describeFrame(frame) }, "frame");
      t.send(encodeFrame(frame));
    });
  } catch (err) {
    transport?.close("normal", "handshake failed");
    if (abort.signal.aborted && abort.signal.reason instanceof MusterError) throw abort.signal.reason;
    throw MusterError.from(err, ErrorCode.UNAVAILABLE);
  } finally {
    o.clock.clearTimeout(timer);
    o.signal?.removeEventListener("abort", onOuterAbort);
  }
}
