import { fileURLToPath } from "node:url";
import protobuf from "protobufjs";

/**
 * aperture's reverse-RPC messages (proto/aperture/rpc/v1/rpc.proto), read with protobufjs from
 * the proto files shipped in the package; the well-known types (Any, Duration, Value) come with
 * protobufjs.
 */
const PROTO_ROOT = fileURLToPath(new URL("../../../proto/", import.meta.url));

/** The method aperture's agents call. */
export const COORDINATOR_METHOD = "/aperture.rpc.v1.Coordinator/Connect";

/** Where a JSON payload's type URL points when the method is not a message name. */
export const TYPE_URL_PREFIX = "type.googleapis.com/";

export interface AperturePayloadAny {
  type_url: string;
  value: Uint8Array;
}

/** ClientToServer, as protobufjs reads it (snake_case fields, uint64 as strings). */
export interface ClientToServer {
  hello?: { name: string; next_id: string };
  response?: {
    id: string;
    payload?: Uint8Array;
    error?: { code: number; message: string };
  };
}

/** ServerToClient, as it is written. */
export interface ServerToClient {
  request?: { id: string; timeout: { seconds: string; nanos: number }; payload: AperturePayloadAny };
  cancel_id?: string;
}

export interface ApertureTypes {
  decodeClient(bytes: Uint8Array): ClientToServer;
  encodeServer(message: ServerToClient): Buffer;
  /** A JSON value as a google.protobuf.Value message. */
  encodeValue(value: unknown): Uint8Array;
  /** A google.protobuf.Value message as a JSON value; throws when the bytes are not one. */
  decodeValue(bytes: Uint8Array): unknown;
}

const READ = { longs: String, bytes: Buffer, defaults: false, oneofs: false } as const;

/** Reads the proto files (once per listener). */
export function loadApertureTypes(): ApertureTypes {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) =>
    target.startsWith("google/protobuf/") ? target : `${PROTO_ROOT}${target}`;
  root.loadSync("aperture/rpc/v1/rpc.proto", { keepCase: true });
  root.loadSync("google/protobuf/struct.proto", { keepCase: true });
  const client = root.lookupType("aperture.rpc.v1.ClientToServer");
  const server = root.lookupType("aperture.rpc.v1.ServerToClient");
  const value = root.lookupType("google.protobuf.Value");
  const toValue = (v: unknown): object => {
    if (v === null || v === undefined) return { nullValue: 0 };
    if (typeof v === "number") return { numberValue: v };
    if (typeof v === "string") return { stringValue: v };
    if (typeof v === "boolean") return { boolValue: v };
    if (Array.isArray(v)) return { listValue: { values: v.map(toValue) } };
    const fields: Record<string, object> = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) fields[k] = toValue(x);
    return { structValue: { fields } };
  };
  // The well-known types come from protobufjs with camelCase field names.
  type V = {
    nullValue?: number;
    numberValue?: number;
    stringValue?: string;
    boolValue?: boolean;
    listValue?: { values?: V[] };
    structValue?: { fields?: Record<string, V> };
  };
  const fromValue = (v: V): unknown => {
    if (v.numberValue !== undefined) return v.numberValue;
    if (v.stringValue !== undefined) return v.stringValue;
    if (v.boolValue !== undefined) return v.boolValue;
    if (v.listValue !== undefined) return (v.listValue.values ?? []).map(fromValue);
    if (v.structValue !== undefined)
      return Object.fromEntries(
        Object.entries(v.structValue.fields ?? {}).map(([k, x]) => [k, fromValue(x)]),
      );
    return null;
  };
  return {
    decodeClient: (bytes) => client.toObject(client.decode(bytes), READ) as ClientToServer,
    encodeServer: (message) => Buffer.from(server.encode(server.fromObject(message)).finish()),
    encodeValue: (v) => value.encode(value.fromObject(toValue(v))).finish(),
    decodeValue: (bytes) => fromValue(value.toObject(value.decode(bytes), READ) as V),
  };
}
