import * as grpc from "@grpc/grpc-js";
import { connectService, type GrpcListenOptions, parsePeer } from "../transport/grpc.js";
import { peerCertificateOf } from "../transport/grpc-tls.js";
import { trafficCounters } from "../transport/traffic.js";
import type { AcceptFn } from "../transport/types.js";
import { ApertureLink } from "./aperture-link.js";
import { COORDINATOR_METHOD, loadApertureTypes } from "./proto.js";

/**
 * Adds aperture's Coordinator service to a grpc:// or grpcs:// listener's server: each call of
 * `Connect` is one agent, accepted as a link (ApertureLink) like any other.
 */
export function serveAperture(
  server: grpc.Server,
  kind: string,
  options: GrpcListenOptions,
  accept: AcceptFn,
): void {
  const types = loadApertureTypes();
  server.addService(connectService(COORDINATOR_METHOD), {
    Connect: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      // Counted apart from muster's own links on this listener.
      const traffic = trafficCounters(options.traffic, `${kind}-aperture`);
      call.sendMetadata(new grpc.Metadata());
      accept(new ApertureLink(call, types, traffic, parsePeer(call.getPeer()), peerCertificateOf(call)));
    },
  });
}
