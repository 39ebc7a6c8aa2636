#!/usr/bin/env python3
"""An agent in Python that joins a muster fleet over aperture's reverse-RPC protocol.

Its only muster-specific parts are the proto files (proto/aperture/rpc/v1/rpc.proto and
proto/google/rpc/status.proto, compiled here at start with grpc_tools) and two metadata
headers: `authorization: Bearer <token>` and `muster-labels: key=value,...`.

    python3 agent.py --server 127.0.0.1:33077 --name py-1 --token-file py-1.token --labels lang=python

A call's method is the type URL of the request (`demo.Echo` arrives as
`type.googleapis.com/demo.Echo`); a JSON request arrives as a google.protobuf.Value and the
answer goes back as one.
"""
import argparse
import importlib
import os
import queue
import sys
import tempfile
import time

import grpc
from google.protobuf import json_format, struct_pb2
from grpc_tools import protoc

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO = os.path.join(HERE, "..", "..", "proto")


def compile_protos():
    """Generates the Python modules of aperture's proto into a temporary folder."""
    out = tempfile.mkdtemp(prefix="aperture-proto-")
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    for name in ("google/rpc/status.proto", "aperture/rpc/v1/rpc.proto"):
        code = protoc.main(["protoc", f"-I{PROTO}", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}", name])
        if code != 0:
            sys.exit(f"cannot compile {name}")
    sys.path.insert(0, out)
    return (
        importlib.import_module("aperture.rpc.v1.rpc_pb2"),
        importlib.import_module("aperture.rpc.v1.rpc_pb2_grpc"),
        importlib.import_module("google.rpc.status_pb2"),
    )


def value_to_json(data):
    v = struct_pb2.Value()
    v.ParseFromString(data)
    return json_format.MessageToDict(v)


def json_to_value(obj):
    v = struct_pb2.Value()
    json_format.ParseDict(obj, v)
    return v.SerializeToString()


def handlers(name):
    """The agent's methods, keyed by the request's message name, as aperture keys them."""
    return {
        "demo.Echo": lambda req: {"agent": name, "echo": req},
        "demo.Sum": lambda req: sum(req),
        "demo.Pid": lambda req: os.getpid(),
    }


def serve(stub, pb, status_pb2, name, metadata):
    """One stream: Hello, then a Response for every Request, until the stream ends."""
    table = handlers(name)
    outgoing = queue.Queue()
    outgoing.put(pb.ClientToServer(hello=pb.ClientToServer.Hello(name=name, next_id=1)))

    def messages():
        while True:
            m = outgoing.get()
            if m is None:
                return
            yield m

    stream = stub.Connect(messages(), metadata=metadata)
    print(f"{name}: streaming", flush=True)
    try:
        for command in stream:
            if command.WhichOneof("command") != "request":
                continue  # cancel_id: handlers here finish at once, nothing to stop
            r = command.request
            kind = r.payload.type_url.rsplit("/", 1)[-1]
            handler = table.get(kind)
            if handler is None:
                error = status_pb2.Status(code=14, message=f"no handler for type {kind}")  # UNAVAILABLE, as aperture
                outgoing.put(pb.ClientToServer(response=pb.Response(id=r.id, error=error)))
                continue
            try:
                answer = handler(value_to_json(r.payload.value))
                outgoing.put(pb.ClientToServer(response=pb.Response(id=r.id, payload=json_to_value(answer))))
            except Exception as e:  # a handler's failure is that call's error, not the agent's
                error = status_pb2.Status(code=13, message=str(e))  # INTERNAL
                outgoing.put(pb.ClientToServer(response=pb.Response(id=r.id, error=error)))
    finally:
        outgoing.put(None)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--server", default="127.0.0.1:33077", help="host:port of a grpc:// listener")
    p.add_argument("--name", required=True)
    p.add_argument("--token-file", help="the agent's token (muster token create --role agent)")
    p.add_argument("--labels", default="", help="key=value,... (used when the token names none)")
    args = p.parse_args()
    pb, pb_grpc, status_pb2 = compile_protos()
    metadata = [("muster-labels", args.labels)]
    if args.token_file:
        with open(args.token_file) as f:
            metadata.append(("authorization", "Bearer " + f.read().strip()))
    delay = 0.5
    while True:
        with grpc.insecure_channel(args.server) as channel:
            try:
                serve(pb_grpc.CoordinatorStub(channel), pb, status_pb2, args.name, metadata)
                delay = 0.5
            except grpc.RpcError as e:
                print(f"{args.name}: stream ended: {e.code().name} {e.details()}", flush=True)
        # aperture has no resume: every stream is a new session. Back off, with a bound.
        time.sleep(delay)
        delay = min(delay * 2, 10)


if __name__ == "__main__":
    main()
