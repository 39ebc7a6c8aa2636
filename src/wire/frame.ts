import type { ErrorBody } from "../errors/muster-error.js";
import type { CallOrigin } from "./origin.js";

/** Version byte of every frame of this protocol (docs/protocol.md). */
export const PROTOCOL_VERSION = 1;

/** version u8 · type u8 · seq u48 · ack u48 */
export const HEADER_BYTES = 14;

/** Largest value of the u48 `seq` and `ack` fields. */
export const MAX_SEQ = 2 ** 48 - 1;

/** Type byte of each frame. 0x01–0x0f: link control (unsequenced); 0x10–: sequenced. */
export const FrameType = {
  HELLO: 0x01,
  WELCOME: 0x02,
  PING: 0x03,
  PONG: 0x04,
  ACK: 0x05,
  CLOSE: 0x06,
  CALL: 0x10,
  ITEM: 0x11,
  RESULT: 0x12,
  CANCEL: 0x13,
  /** Opens a stream: a call answered by ITEMs under credit-based flow control, then a RESULT. */
  OPEN: 0x14,
  /** Grants the sender of a stream more room, in bytes of item cost. */
  CREDIT: 0x15,
  /**
   * Names who a relayed CALL or OPEN is made on behalf of; the CALL or OPEN with the same id
   * follows it at once. Sent only to a dialer whose HELLO `features` has "origin".
   */
  ORIGIN: 0x16,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

/** How a payload's bytes are to be read. */
export const PayloadKind = {
  /** No value (`undefined`); no bytes follow. */
  NONE: 0,
  /** UTF-8 JSON text. */
  JSON: 1,
  /** Opaque bytes, delivered as a `Uint8Array`. */
  BYTES: 2,
} as const;
export type PayloadKind = (typeof PayloadKind)[keyof typeof PayloadKind];

/** A payload as carried on the wire: decoded lazily, by the rpc layer. */
export interface Payload {
  kind: PayloadKind;
  bytes: Uint8Array;
}

/** Who is on the other end of a session. */
export type PeerRole = "agent" | "operator";

/** The first frame of every connection, sent by the dialing side. */
export interface HelloBody {
  role: PeerRole;
  /** Public name: unique in the fleet for agents; free text for operators. */
  name: string;
  labels: Record<string, string>;
  /** Software version of the dialing side. */
  version: string;
  /** Private resume token from an earlier WELCOME; absent for a new session. */
  token?: string;
  /**
   * The credential: a signed token (agent, operator, admin or enrolment) issued by
   * `muster token create`, presented on every HELLO, resumes included. Absent when the link's
   * client certificate is the identity, or on a standalone server.
   */
  auth?: string;
  /**
   * Enrolment only: a random id the agent keeps while it waits to be accepted, so that an
   * operator's accept admits this agent and not another one with the same enrolment token.
   */
  enrolId?: string;
  /**
   * Optional behaviours the dialer asks for, by name; a server ignores names it does not know.
   * `"origin"`: send ORIGIN frames ahead of relayed calls and streams.
   */
  features?: string[];
}

/** The server's answer to HELLO. */
export interface WelcomeBody {
  /** Public id of the session (logs, presence). */
  sessionId: string;
  /** Private token to present in HELLO to resume this session. */
  token: string;
  /** True when an earlier session was resumed. */
  resumed: boolean;
  /** True when HELLO asked to resume a session the server no longer has. */
  expired: boolean;
  /** Number of frames the server is about to replay. */
  replaying: number;
  heartbeatIntervalMs: number;
  resumeWindowMs: number;
  server: { name: string; version: string };
  /** A token the server issued to an agent it just enrolled: present it from now on. */
  auth?: string;
  /**
   * The cluster's live servers, this one included, for the dialer to spread over and fail over
   * to (docs/protocol.md §6.2). Absent from a server that is not in a cluster. A receiver drops
   * the field, and keeps the WELCOME, when it breaks `WELCOME_SERVERS_LIMITS` or its shape.
   */
  servers?: WelcomeServers;
}

/** One server of the cluster, as announced in WELCOME `servers`. */
export interface WelcomeServer {
  /** The server's name, as it gives it in WELCOME `server.name`. */
  name: string;
  /** Where dialers reach it, one URL per listener (`tcp://host:port`, `wss://…`). */
  urls: string[];
  /** The server's load: any non-negative number, lower is less loaded; absent when unknown. */
  load?: number;
  /** `draining`: it takes no new sessions (resumes only). Absent: `ready`. */
  state?: WelcomeServerState;
}

/** The states a WELCOME `servers` entry can announce. */
export type WelcomeServerState = "ready" | "draining";

/** The list a WELCOME announces in `servers`. */
export type WelcomeServers = WelcomeServer[];

/** Bounds of WELCOME `servers`: beyond any of them, a receiver ignores the whole field. */
export const WELCOME_SERVERS_LIMITS = {
  /** Entries in the list. */
  serversMax: 64,
  /** URLs of one entry (1 to this many). */
  urlsMax: 8,
  /** Characters of one URL (1 to this many). */
  urlMaxChars: 512,
  /** Characters of an entry's `name` (1 to this many). */
  nameMaxChars: 256,
} as const;

/** Why a link or session is closed. Carried in CLOSE frames and in events. */
export const CloseCode = {
  NORMAL: "normal",
  PROTOCOL_ERROR: "protocol_error",
  FRAME_TOO_LARGE: "frame_too_large",
  HANDSHAKE_TIMEOUT: "handshake_timeout",
  HEARTBEAT_TIMEOUT: "heartbeat_timeout",
  REPLACED: "replaced",
  REJECTED: "rejected",
  SHUTDOWN: "shutdown",
  /**
   * The server is draining and hands its sessions over: resume this session on another server
   * of the cluster (it takes the session over, nothing lost); the link only ends.
   */
  MOVED: "moved",
  SLOW_CONSUMER: "slow_consumer",
  /** The server is at a connection limit or admitting handshakes at its set rate: retry after the hint. */
  BUSY: "busy",
  /** No valid credential (missing, malformed, badly signed, expired or revoked token). */
  UNAUTHENTICATED: "unauthenticated",
  /** Enrolment: the agent waits for an operator to accept it; retry after the hint. */
  PENDING: "pending",
  TRANSPORT_ERROR: "transport_error",
  REMOTE_CLOSED: "remote_closed",
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

export interface CloseBody {
  code: CloseCode;
  message: string;
  /** A hint for the dialer: wait at least this long before the next attempt. */
  retryAfterMs?: number;
  /**
   * With `moved` or `shutdown` from a server of a cluster: its servers now, as in WELCOME
   * `servers`, so that a dialer sent away goes to a server that is up, not to one it heard of
   * when it connected.
   */
  servers?: WelcomeServers;
}

interface Header {
  /** Sequence number; 0 on unsequenced (control) frames. */
  seq: number;
  /** Cumulative acknowledgement: every frame up to this seq was received. */
  ack: number;
}

export type Frame =
  | (Header & { type: typeof FrameType.HELLO; hello: HelloBody })
  | (Header & { type: typeof FrameType.WELCOME; welcome: WelcomeBody })
  | (Header & { type: typeof FrameType.PING; time: number })
  | (Header & { type: typeof FrameType.PONG; time: number })
  | (Header & { type: typeof FrameType.ACK })
  | (Header & { type: typeof FrameType.CLOSE; close: CloseBody })
  | (Header & {
      type: typeof FrameType.CALL;
      id: number;
      timeoutMs: number;
      method: string;
      payload: Payload;
    })
  | (Header & { type: typeof FrameType.ITEM; id: number; payload: Payload })
  | (Header & { type: typeof FrameType.RESULT; id: number; payload: Payload })
  | (Header & { type: typeof FrameType.RESULT; id: number; error: ErrorBody })
  | (Header & { type: typeof FrameType.CANCEL; id: number })
  | (Header & {
      type: typeof FrameType.OPEN;
      id: number;
      /** Time left before the opener's deadline, in ms; 0: no deadline. */
      timeoutMs: number;
      /** Item cost the opener can hold before it grants more with CREDIT. */
      window: number;
      method: string;
      payload: Payload;
    })
  | (Header & { type: typeof FrameType.CREDIT; id: number; bytes: number })
  | (Header & { type: typeof FrameType.ORIGIN; id: number; origin: CallOrigin });

/** What an ITEM of a stream counts against the window: its payload bytes plus this. */
export const ITEM_COST_OVERHEAD = 16;

/** The cost of one stream item with `payloadBytes` bytes of payload. */
export function itemCost(payloadBytes: number): number {
  return payloadBytes + ITEM_COST_OVERHEAD;
}

export type FrameOf<T extends FrameType> = Extract<Frame, { type: T }>;

/** True for frame types that carry a sequence number and are replayed on resume. */
export function isSequenced(type: number): boolean {
  return type >= 0x10;
}

/** Limits on names and labels, checked when a HELLO is decoded. */
export const NAME_LIMITS = {
  nameMaxChars: 128,
  labelsMax: 64,
  labelKeyMaxChars: 63,
  labelValueMaxChars: 256,
  /** HELLO `version`. */
  versionMaxChars: 64,
  /** HELLO `token` (1 to this many characters). */
  tokenMaxChars: 128,
  /** HELLO `auth` and WELCOME `auth` (1 to this many characters). */
  authMaxChars: 4096,
  /** HELLO `enrolId`: 16 to this many base64url characters. */
  enrolIdMaxChars: 64,
  /** HELLO `features`: at most this many entries, each 1–32 characters. */
  featuresMax: 16,
  featureMaxChars: 32,
  methodMaxBytes: 255,
} as const;

/** Agent names: letters, digits and `. _ - : @`, starting with a letter or digit. */
export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/;
/** Label keys: letters, digits and `. _ - /`, starting with a letter or digit. */
export const LABEL_KEY_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$/;
