import { DEFAULTS } from "../internal/defaults.js";
import { dialGrpc, listenGrpc } from "./grpc.js";
import { dialHttp } from "./http-dial.js";
import type { ListenAllOptions } from "./listen.js";
import { dialTcp, listenTcp } from "./tcp.js";
import type { DialOptions, Listener, Transport } from "./types.js";
import { dialWebSocket, listenWebSocket } from "./websocket.js";

/** Where to listen, from a listen URL. `host` has no brackets (IPv6 hosts are bare). */
export interface ListenAddress {
  /** The URL's scheme, e.g. "tcp". */
  kind: string;
  host: string;
  port: number;
}

/**
 * One URL scheme muster speaks: how to dial it and how to listen on it. Adding a transport is
 * adding an entry to `TRANSPORT_SCHEMES`; nothing above the transport layer changes.
 */
export interface TransportScheme {
  /** The URL scheme without "://", lower case. */
  readonly scheme: string;
  /** Whether it runs over TLS (a listener needs the server's certificate and key). */
  readonly secure: boolean;
  /** The port of a URL that names none. */
  readonly defaultPort: number;
  /** Opens a transport to `url` (whose protocol is this scheme). */
  dial(url: URL, options: DialOptions): Promise<Transport>;
  /**
   * Opens a listener at `address`; TLS material is in `options.tls` when `secure`. Absent for a
   * scheme that is only dialled (http and https: the ws and wss listeners serve them).
   */
  listen?(address: ListenAddress, options: ListenAllOptions): Promise<Listener>;
}

function listenOn(address: ListenAddress, options: ListenAllOptions, secure: boolean) {
  return {
    host: address.host,
    port: address.port,
    maxFrameBytes: options.maxFrameBytes,
    firstFrameMaxBytes: options.firstFrameMaxBytes,
    traffic: options.traffic,
    ...(secure ? { tls: options.tls } : {}),
  };
}

function webSocket(scheme: "ws" | "wss"): TransportScheme {
  const secure = scheme === "wss";
  return {
    scheme,
    secure,
    defaultPort: DEFAULTS.wsPort,
    dial: dialWebSocket,
    listen: (address, options) =>
      listenWebSocket(
        {
          ...listenOn(address, options, secure),
          ...(options.onHttpRequest ? { onHttpRequest: options.onHttpRequest } : {}),
          ...(options.http ? { http: options.http } : {}),
          ...(options.checkUpgrade ? { checkUpgrade: options.checkUpgrade } : {}),
        },
        options.accept,
      ),
  };
}

function tcp(scheme: "tcp" | "tls"): TransportScheme {
  const secure = scheme === "tls";
  return {
    scheme,
    secure,
    defaultPort: DEFAULTS.tcpPort,
    dial: dialTcp,
    listen: (address, options) => listenTcp(listenOn(address, options, secure), options.accept),
  };
}

function grpcScheme(scheme: "grpc" | "grpcs"): TransportScheme {
  const secure = scheme === "grpcs";
  return {
    scheme,
    secure,
    defaultPort: DEFAULTS.grpcPort,
    dial: dialGrpc,
    listen: (address, options) => listenGrpc(listenOn(address, options, secure), options.accept),
  };
}

function httpScheme(scheme: "http" | "https"): TransportScheme {
  return { scheme, secure: scheme === "https", defaultPort: scheme === "https" ? 443 : 80, dial: dialHttp };
}

/** Every network scheme, in the order messages list them. (memory:// is in-process only.) */
export const TRANSPORT_SCHEMES: readonly TransportScheme[] = [
  webSocket("ws"),
  webSocket("wss"),
  tcp("tcp"),
  tcp("tls"),
  grpcScheme("grpc"),
  grpcScheme("grpcs"),
  httpScheme("http"),
  httpScheme("https"),
];

/** The entry for `scheme` ("tcp", not "tcp:"), if muster speaks it. */
export function transportScheme(scheme: string): TransportScheme | undefined {
  return TRANSPORT_SCHEMES.find((s) => s.scheme === scheme);
}

/**
 * "ws://, wss://, tcp:// and tls://" — the schemes for a message (those that can be listened
 * on, with `listening`), with `extra` at the end.
 */
export function schemeList(extra: readonly string[] = [], listening = false): string {
  const schemes = TRANSPORT_SCHEMES.filter((s) => !listening || s.listen !== undefined);
  const names = [...schemes.map((s) => `${s.scheme}://`), ...extra];
  return names.length === 1 ? names[0]! : `${names.slice(0, -1).join(", ")} and ${names.at(-1)}`;
}

/** The URL protocols ("tcp:") muster dials over a network, and those of them that use TLS. */
export const NETWORK_PROTOCOLS: ReadonlySet<string> = new Set(TRANSPORT_SCHEMES.map((s) => `${s.scheme}:`));
export const SECURE_PROTOCOLS: ReadonlySet<string> = new Set(
  TRANSPORT_SCHEMES.filter((s) => s.secure).map((s) => `${s.scheme}:`),
);
