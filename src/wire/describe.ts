import { type Frame, FrameType, type Payload, PayloadKind } from "./frame.js";
import { oneLine } from "./text.js";

const names: Record<number, string> = Object.fromEntries(Object.entries(FrameType).map(([k, v]) => [v, k]));

function payloadText(p: Payload, max: number): string {
  switch (p.kind) {
    case PayloadKind.NONE:
      return "none";
    case PayloadKind.BYTES:
      return `bytes(${p.bytes.length})`;
    default: {
      const text = Buffer.from(p.bytes.buffer, p.bytes.byteOffset, p.bytes.length).toString("utf8");
      return oneLine(text.length > max ? `${text.slice(0, max)}…(${p.bytes.length}B)` : text);
    }
  }
}

/** One readable line per frame, for `--trace`. Payloads are cut at `max` characters. */
export function describeFrame(frame: Frame, max = 200): string {
  const head = `${names[frame.type] ?? "?"} seq=${frame.seq} ack=${frame.ack}`;
  switch (frame.type) {
    case FrameType.HELLO: {
      const { token, auth, ...rest } = frame.hello;
      const shown = {
        ...rest,
        token: token === undefined ? undefined : "<redacted>",
        auth: auth === undefined ? undefined : "<redacted>",
      };
      return `${head} ${oneLine(JSON.stringify(shown))}`;
    }
    case FrameType.WELCOME: {
      const { auth, ...rest } = frame.welcome;
      const shown = { ...rest, token: "<redacted>", auth: auth === undefined ? undefined : "<redacted>" };
      return `${head} ${oneLine(JSON.stringify(shown))}`;
    }
    case FrameType.CLOSE:
      return `${head} ${oneLine(JSON.stringify(frame.close))}`;
    case FrameType.PING:
    case FrameType.PONG:
      return `${head} time=${frame.time.toFixed(1)}`;
    case FrameType.ACK:
      return head;
    case FrameType.CALL:
      return `${head} id=${frame.id} method=${oneLine(frame.method)} timeout=${frame.timeoutMs}ms ${payloadText(frame.payload, max)}`;
    case FrameType.ITEM:
      return `${head} id=${frame.id} ${payloadText(frame.payload, max)}`;
    case FrameType.RESULT:
      return "error" in frame
        ? `${head} id=${frame.id} error=${frame.error.code} ${oneLine(JSON.stringify(frame.error.message))}`
        : `${head} id=${frame.id} ok ${payloadText(frame.payload, max)}`;
    case FrameType.CANCEL:
      return `${head} id=${frame.id}`;
    case FrameType.OPEN:
      return `${head} id=${frame.id} stream=${oneLine(frame.method)} window=${frame.window} timeout=${frame.timeoutMs === 0 ? "none" : `${frame.timeoutMs}ms`} ${payloadText(frame.payload, max)}`;
    case FrameType.CREDIT:
      return `${head} id=${frame.id} bytes=${frame.bytes}`;
    case FrameType.ORIGIN:
      return `${head} id=${frame.id} role=${oneLine(frame.origin.role)} name=${oneLine(frame.origin.name)}`;
  }
}
