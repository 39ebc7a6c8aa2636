/**
 * The `grpc.Comms` service of comms.proto, loaded without reading a file: tsc does not copy
 * .proto files to dist/, so the definition is embedded here as a protobufjs JSON descriptor.
 * A test keeps it equal to comms.proto, which stays the readable source of truth.
 */
import { type GrpcObject, loadPackageDefinition, type ServiceClientConstructor } from "@grpc/grpc-js";
import { fromJSON, type Options } from "@grpc/proto-loader";

/** comms.proto as a protobufjs JSON descriptor. */
export const COMMS_DESCRIPTOR: Parameters<typeof fromJSON>[0] = {
  nested: {
    grpc: {
      nested: {
        Comms: {
          methods: {
            GetNumbers: {
              requestType: "Request",
              requestStream: true,
              responseType: "Reply",
              responseStream: true,
              comment: "",
            },
          },
        },
        Request: { fields: { message: { type: "string", id: 1 } } },
        Reply: {
          oneofs: { payload: { oneof: ["data", "error"] } },
          fields: { data: { type: "Data", id: 1 }, error: { type: "Error", id: 2 } },
        },
        Data: { fields: { number: { type: "uint64", id: 1 } } },
        Error: { fields: { message: { type: "string", id: 1 } } },
      },
    },
  },
};

/**
 * The seed client's loader options: uint64 as decimal strings (exact beyond 2^53), zero values
 * present, and a virtual `payload` naming the oneof member that is set.
 */
export const LOADER_OPTIONS: Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
};

/** `grpc.Request`: one free-text command. */
export interface CommsRequest {
  message: string;
}

/** `grpc.Reply` as written: uint64 numbers as decimal strings, so no precision is lost. */
export type CommsReply = { data: { number: string } } | { error: { message: string } };

/** `grpc.Reply` as read with `LOADER_OPTIONS`. */
export interface CommsReplyIn {
  payload?: "data" | "error";
  data?: { number: string };
  error?: { message: string };
}

let comms: ServiceClientConstructor | undefined;

/** The `grpc.Comms` client constructor; its `service` is what a server adds. */
export function commsService(): ServiceClientConstructor {
  if (!comms) {
    const pkg = loadPackageDefinition(fromJSON(COMMS_DESCRIPTOR, LOADER_OPTIONS));
    comms = (pkg.grpc as GrpcObject).Comms as ServiceClientConstructor;
  }
  return comms;
}

export const dataReply = (n: bigint | number): CommsReply => ({ data: { number: n.toString() } });
export const errorReply = (message: string): CommsReply => ({ error: { message } });
