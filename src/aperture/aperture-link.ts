import type * as grpc from "@grpc/grpc-js";
import { decodeTokenUnverified } from "../auth/tokens.js";
import { ErrorCode } from "../errors/codes.js";
import type { ErrorBody } from "../errors/muster-error.js";
import { formatHostPort, isLoopbackAddress } from "../internal/host-port.js";
import { LinkState } from "../transport/link-state.js";
import type { TrafficCounters } from "../transport/traffic.js";
import type { PeerCertificate, Transport, TransportHandler } from "../transport/types.js";
import { decodeFrame, encodeFrame } from "../wire/codec.js";
import { CloseCode, type Frame, FrameType, type Payload, PayloadKind } from "../wire/frame.js";
import { type ApertureTypes, type ClientToServer, TYPE_URL_PREFIX } from "./proto.js";

/** gRPC status codes, for the errors of aperture's Status messages. */
const GRPC_TO_MUSTER: Record<number, ErrorCode> = {
  1: ErrorCode.CANCELLED,
  3: ErrorCode.INVALID_ARGUMENT,
  4: ErrorCode.DEADLINE_EXCEEDED,
  5: ErrorCode.NOT_FOUND,
  7: ErrorCode.PERMISSION_DENIED,
  8: ErrorCode.RESOURCE_EXHAUSTED,
  12: ErrorCode.UNIMPLEMENTED,
  14: ErrorCode.UNAVAILABLE,
  16: ErrorCode.UNAUTHENTICATED,
};

/** How a muster CLOSE ends an aperture stream (gRPC status codes). */
function statusOfClose(code: CloseCode): number {
  switch (code) {
    case CloseCode.UNAUTHENTICATED:
      return 16;
    case CloseCode.REJECTED:
      return 7;
    case CloseCode.REPLACED:
      return 10; // ABORTED: a newer connection with the same name won, as in aperture
    case CloseCode.PROTOCOL_ERROR:
      return 3;
    default:
      return 14;
  }
}

/**
 * Labels from the `muster-labels` metadata (`key=value` pairs separated by commas); without it,
 * those the token binds, as `muster agent` takes them when given no `--label`.
 */
function labelsOf(metadata: grpc.Metadata, token: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  const header = metadata.get("muster-labels")[0];
  if (header === undefined) {
    try {
      return token === undefined ? {} : { ...(decodeTokenUnverified(token).labels ?? {}) };
    } catch {
      return {}; // not a token: the server says so
    }
  }
  const text = String(header);
  for (const pair of text.split(",")) {
    const at = pair.indexOf("=");
    if (pair.trim() === "") continue;
    // The server checks names and values as it checks any agent's: a bad one is refused there.
    out[at === -1 ? pair.trim() : pair.slice(0, at).trim()] = at === -1 ? "" : pair.slice(at + 1).trim();
  }
  return out;
}

/** The token of `authorization: Bearer …` (or of `muster-token`). */
function tokenOf(metadata: grpc.Metadata): string | undefined {
  const bearer = /^Bearer\s+(\S+)$/i.exec(String(metadata.get("authorization")[0] ?? ""))?.[1];
  const plain = metadata.get("muster-token")[0];
  return bearer ?? (plain === undefined ? undefined : String(plain));
}

/**
 * An agent that speaks aperture's reverse RPC (`aperture.rpc.v1.Coordinator/Connect`), seen by
 * the server as a link like any other: its Hello becomes a HELLO, the server's CALLs become
 * Requests (the method names the payload's type URL; a JSON payload is a google.protobuf.Value,
 * bytes go as they are), Responses become RESULTs, a CANCEL becomes a cancel_id. Heartbeats and
 * acknowledgements are answered here. aperture has no resume: when the stream ends, the session
 * ends with it (a CLOSE to the server), and the agent's next stream is a new session.
 */
export class ApertureLink implements Transport {
  readonly kind = "aperture";
  readonly remoteAddress: string;
  readonly isLoopback: boolean;
  readonly peerCertificate: PeerCertificate | undefined;
  readonly #call: grpc.ServerDuplexStream<Buffer, Buffer>;
  readonly #types: ApertureTypes;
  readonly #traffic: TrafficCounters;
  readonly #link = new LinkState(this);
  readonly #byRequest = new Map<string, { callId: number; json: boolean }>();
  readonly #byCall = new Map<number, string>();
  #seq = 0;
  #ack = 0;
  #nextId = 0n;
  #greeted = false;
  #ended = false;
  #buffered = 0;

  constructor(
    call: grpc.ServerDuplexStream<Buffer, Buffer>,
    types: ApertureTypes,
    traffic: TrafficCounters,
    remote: { host: string; port: number },
    peerCertificate?: PeerCertificate,
  ) {
    this.#call = call;
    this.#types = types;
    this.#traffic = traffic;
    this.peerCertificate = peerCertificate;
    this.remoteAddress = formatHostPort(remote.host || "unknown", remote.port);
    this.isLoopback = isLoopbackAddress(remote.host);
    call.on("data", (bytes: Buffer) => this.#fromAgent(bytes));
    const ended = (why: string): void => this.#streamEnded(why);
    call.on("end", () => ended("the agent ended its stream"));
    call.on("error", (e: Error) => ended(e.message));
    call.on("cancelled", () => ended("the stream was cancelled"));
  }

  get open(): boolean {
    return this.#link.open;
  }

  get bufferedBytes(): number {
    return this.#buffered;
  }

  setHandler(handler: TransportHandler): void {
    this.#link.setHandler(handler);
  }

  /** @internal See LinkOwner. */
  _kill(): void {
    this.#end(14, "closed");
    this.#link.gone({ code: CloseCode.TRANSPORT_ERROR, message: "stream closed" });
  }

  close(code: CloseCode = CloseCode.NORMAL, message = "closed"): void {
    if (!this.#link.open) return;
    this.#link.shut({ code, message });
    this.#end(code === CloseCode.NORMAL ? 0 : statusOfClose(code), message);
    this.#link.gone({ code, message });
  }

  sendMany(frames: readonly Uint8Array[]): boolean {
    let ok = this.#link.open;
    for (const f of frames) ok = this.send(f);
    return ok;
  }

  /** A frame from the server: answered here, or turned into aperture's messages. */
  send(bytes: Uint8Array): boolean {
    if (!this.#link.open) return false;
    this.#traffic.framesOut++;
    this.#traffic.bytesOut += bytes.length;
    const frame = decodeFrame(bytes);
    if (frame.seq > 0) this.#ack = frame.seq;
    switch (frame.type) {
      case FrameType.PING:
        this.#toServer({ type: FrameType.PONG, seq: 0, ack: this.#ack, time: frame.time });
        break;
      case FrameType.CLOSE:
        this.#end(statusOfClose(frame.close.code), frame.close.message);
        break;
      case FrameType.CALL:
        this.#request(frame.id, frame.timeoutMs, frame.method, frame.payload);
        break;
      case FrameType.CANCEL: {
        const requestId = this.#byCall.get(frame.id);
        if (requestId !== undefined) {
          this.#forget(requestId);
          this.#write(this.#types.encodeServer({ cancel_id: requestId }));
        }
        break;
      }
      case FrameType.OPEN:
        this.#result(frame.id, {
          code: ErrorCode.UNIMPLEMENTED,
          message: `${frame.method}: agents on aperture's protocol have no streams`,
        });
        break;
      default:
        break; // WELCOME, ACK, PONG, ORIGIN, CREDIT…: nothing for an aperture agent
    }
    if (frame.seq > 0) this.#toServer({ type: FrameType.ACK, seq: 0, ack: this.#ack });
    return this.#buffered <= 1024 * 1024;
  }

  #request(callId: number, timeoutMs: number, method: string, payload: Payload): void {
    const json = payload.kind !== PayloadKind.BYTES;
    let value: Uint8Array;
    try {
      value =
        payload.kind === PayloadKind.JSON
          ? this.#types.encodeValue(JSON.parse(Buffer.from(payload.bytes).toString("utf8")))
          : payload.kind === PayloadKind.BYTES
            ? payload.bytes
            : this.#types.encodeValue(null);
    } catch (e) {
      // A caller's bad JSON fails that call, never the server that relays it.
      this.#result(callId, {
        code: ErrorCode.INVALID_ARGUMENT,
        message: `${method}: the request is not JSON a google.protobuf.Value can carry (${(e as Error).message})`,
      });
      return;
    }
    const requestId = String(this.#nextId++);
    this.#byRequest.set(requestId, { callId, json });
    this.#byCall.set(callId, requestId);
    const timeout = { seconds: String(Math.floor(timeoutMs / 1000)), nanos: (timeoutMs % 1000) * 1_000_000 };
    const typeUrl = method.includes("/") ? method : `${TYPE_URL_PREFIX}${method}`;
    this.#write(
      this.#types.encodeServer({
        request: { id: requestId, timeout, payload: { type_url: typeUrl, value } },
      }),
    );
  }

  #forget(requestId: string): void {
    const entry = this.#byRequest.get(requestId);
    this.#byRequest.delete(requestId);
    if (entry) this.#byCall.delete(entry.callId);
  }

  #fromAgent(bytes: Buffer): void {
    if (!this.#link.open) return;
    let message: ClientToServer;
    try {
      message = this.#types.decodeClient(bytes);
    } catch (e) {
      this.#refuse(`not a ClientToServer message: ${(e as Error).message}`);
      return;
    }
    if (message.hello) {
      if (this.#greeted) {
        this.#refuse("unexpected hello");
        return;
      }
      this.#greeted = true;
      this.#nextId = BigInt(message.hello.next_id ?? "0");
      const metadata = this.#call.metadata;
      const auth = tokenOf(metadata);
      this.#toServer({
        type: FrameType.HELLO,
        seq: 0,
        ack: 0,
        hello: {
          role: "agent",
          name: message.hello.name ?? "",
          labels: labelsOf(metadata, auth),
          version: "aperture.rpc.v1",
          ...(auth !== undefined ? { auth } : {}),
        },
      });
      return;
    }
    if (!this.#greeted) {
      this.#refuse("expected hello msg");
      return;
    }
    const r = message.response;
    if (!r) return;
    const entry = this.#byRequest.get(r.id);
    if (entry === undefined) return; // late, cancelled or timed out: ignored, as aperture does
    this.#forget(r.id);
    if (r.error) {
      const code = GRPC_TO_MUSTER[r.error.code ?? 2] ?? ErrorCode.INTERNAL;
      this.#result(entry.callId, { code, message: r.error.message || `aperture status ${r.error.code}` });
      return;
    }
    const answer = r.payload ?? new Uint8Array(0);
    let value: Payload = { kind: PayloadKind.BYTES, bytes: answer };
    if (entry.json) {
      try {
        const json = this.#types.decodeValue(answer);
        value = { kind: PayloadKind.JSON, bytes: Buffer.from(JSON.stringify(json), "utf8") };
      } catch {} // not a Value: the caller gets the bytes
    }
    this.#result(entry.callId, value);
  }

  #result(callId: number, outcome: Payload | ErrorBody): void {
    const seq = ++this.#seq;
    this.#toServer(
      "kind" in outcome
        ? { type: FrameType.RESULT, seq, ack: this.#ack, id: callId, payload: outcome }
        : { type: FrameType.RESULT, seq, ack: this.#ack, id: callId, error: outcome },
    );
  }

  #toServer(frame: Frame): void {
    const bytes = encodeFrame(frame);
    this.#traffic.framesIn++;
    this.#traffic.bytesIn += bytes.length;
    this.#link.deliver(bytes);
  }

  #write(message: Buffer): void {
    const size = message.length;
    this.#buffered += size;
    this.#call.write(message, () => {
      this.#buffered -= size;
    });
  }

  /** Ends the stream for a message that breaks aperture's protocol (INVALID_ARGUMENT). */
  #refuse(why: string): void {
    this.#end(3, why);
    this.#streamEnded(why);
  }

  #end(status: number, details: string): void {
    if (this.#ended) return;
    this.#ended = true;
    if (status === 0) this.#call.end();
    else this.#call.emit("error", { code: status, details });
  }

  /** The stream is over: the session ends now, as aperture has no resume. */
  #streamEnded(why: string): void {
    if (!this.#link.open) return;
    if (this.#greeted)
      this.#toServer({
        type: FrameType.CLOSE,
        seq: 0,
        ack: this.#ack,
        close: {
          code: CloseCode.NORMAL,
          message: `aperture stream ended (${why}): aperture agents do not resume`,
        },
      });
    this.#link.shut({ code: CloseCode.REMOTE_CLOSED, message: why });
    this.#end(0, why);
    this.#link.gone({ code: CloseCode.REMOTE_CLOSED, message: why });
  }
}
