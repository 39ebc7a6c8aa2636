// An agent written from aperture's proto alone (grpc-js + proto-loader, protobufjs for the
// google.protobuf.Value it unpacks), joining a muster server's grpc:// listener.
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import protobuf from "protobufjs";
import { ApertureLink } from "../src/aperture/aperture-link.js";
import { loadApertureTypes } from "../src/aperture/proto.js";
import { generateKey } from "../src/auth/keys.js";
import { issueToken } from "../src/auth/tokens.js";
import { ErrorCode } from "../src/errors/codes.js";
import { createServer, type MusterServer } from "../src/index.js";
import { TrafficStats } from "../src/transport/traffic.js";
import { decodeFrame, encodeFrame } from "../src/wire/codec.js";
import { type Frame, FrameType, PayloadKind } from "../src/wire/frame.js";
import { until } from "./conformance/transport-conformance.js";

const PROTO = fileURLToPath(new URL("../../proto/", import.meta.url));
const definition = protoLoader.loadSync("aperture/rpc/v1/rpc.proto", {
  includeDirs: [PROTO],
  keepCase: true,
  longs: String,
  oneofs: true,
});
const loaded = grpc.loadPackageDefinition(definition) as unknown as {
  aperture: { rpc: { v1: { Coordinator: grpc.ServiceClientConstructor } } };
};
const Value = protobuf.Root.fromJSON(protobuf.common.get("google/protobuf/struct.proto")!).lookupType(
  "google.protobuf.Value",
);
const unpack = (bytes: Uint8Array): unknown => Value.toObject(Value.decode(bytes));
const pack = (v: object): Buffer => Buffer.from(Value.encode(Value.fromObject(v)).finish());

interface Request {
  id: string;
  timeout: { seconds: string; nanos: number };
  payload: { type_url: string; value: Buffer };
}

/** A minimal aperture agent: handlers by type URL, as aperture's Dispatcher keys them. */
class ApertureAgent {
  readonly requests: Request[] = [];
  readonly cancels: string[] = [];
  ended: grpc.StatusObject | undefined;
  readonly call: grpc.ClientDuplexStream<unknown, unknown>;
  readonly client: grpc.Client;

  constructor(
    port: number,
    name: string,
    metadata: Record<string, string>,
    handlers: Record<string, (value: Buffer) => Buffer | { code: number; message: string } | "hang">,
  ) {
    this.client = new loaded.aperture.rpc.v1.Coordinator(
      `127.0.0.1:${port}`,
      grpc.credentials.createInsecure(),
    );
    const md = new grpc.Metadata();
    for (const [k, v] of Object.entries(metadata)) md.set(k, v);
    this.call = (
      this.client as unknown as { Connect(md: grpc.Metadata): grpc.ClientDuplexStream<unknown, unknown> }
    ).Connect(md);
    this.call.on("error", () => {});
    this.call.on("status", (s: grpc.StatusObject) => {
      this.ended = s;
    });
    this.call.on("data", (m: { request?: Request; cancel_id?: string }) => {
      if (m.cancel_id !== undefined) {
        this.cancels.push(m.cancel_id);
        return;
      }
      const r = m.request!;
      this.requests.push(r);
      const name = r.payload.type_url.replace(/^type\.googleapis\.com\//, "");
      const h = handlers[name];
      if (!h) {
        this.call.write({
          response: { id: r.id, error: { code: 14, message: `no handler for type ${name}` } },
        });
        return;
      }
      const out = h(r.payload.value);
      if (out === "hang") return;
      if (Buffer.isBuffer(out)) this.call.write({ response: { id: r.id, payload: out } });
      else this.call.write({ response: { id: r.id, error: out } });
    });
    this.call.write({ hello: { name, next_id: "100" } });
  }

  close(): void {
    this.call.end();
    this.client.close();
  }
}

describe("aperture's protocol on the grpc:// listener", () => {
  const key = generateKey();
  let server: MusterServer;
  let port: number;
  const agents: ApertureAgent[] = [];
  const start = (...args: ConstructorParameters<typeof ApertureAgent>): ApertureAgent => {
    const a = new ApertureAgent(...args);
    agents.push(a);
    return a;
  };
  const bearer = async (name: string, labels?: Record<string, string>): Promise<string> =>
    `Bearer ${await issueToken(key, { role: "agent", subject: name, ...(labels ? { labels } : {}) })}`;

  before(async () => {
    server = createServer({ name: "s1", listen: ["grpc://127.0.0.1:0"], auth: { key } });
    await server.start();
    port = server.listeners[0]!.port;
  });
  after(async () => {
    for (const a of agents) a.close();
    await server.close();
  });

  // Answers {echoed: true}, having unpacked the request as a Value.
  const echo = (v: Buffer): Buffer => {
    assert.equal(typeof unpack(v), "object");
    return pack({ structValue: { fields: { echoed: { boolValue: true } } } });
  };

  it("agents join with a token and labels, are targeted, called with per-agent outcomes, and listed", async () => {
    // Labels from the metadata (the token binds the same ones), or from the token alone.
    start(
      port,
      "ap-1",
      { authorization: await bearer("ap-1", { role: "db", zone: "eu" }), "muster-labels": "role=db,zone=eu" },
      {
        "acme.Echo": echo,
        "acme.Fail": () => ({ code: 9, message: "not now" }),
      },
    );
    start(port, "ap-2", { authorization: await bearer("ap-2", { role: "db" }) }, { "acme.Echo": echo });
    await until("both listed", () => server.agents().filter((a) => a.state === "connected").length === 2);
    const info = server.agents().find((a) => a.name === "ap-1")!;
    assert.equal(info.transport, "aperture");
    assert.deepEqual(info.labels, { role: "db", zone: "eu" });

    const done = await server.call("role=db", "acme.Echo", { x: 1 }, { timeoutMs: 5000 }).done;
    assert.deepEqual(done.outcomes.map((o) => [o.agent, o.status, o.value]).sort(), [
      ["ap-1", "ok", { echoed: true }],
      ["ap-2", "ok", { echoed: true }],
    ]);
    // The request: the method as the type URL, the JSON as a google.protobuf.Value, ids from
    // Hello.next_id, the deadline as a Duration.
    const r = agents[0]!.requests[0]!;
    assert.equal(r.payload.type_url, "type.googleapis.com/acme.Echo");
    assert.deepEqual(unpack(r.payload.value), { structValue: { fields: { x: { numberValue: 1 } } } });
    assert.equal(r.id, "100");
    assert.ok(Number(r.timeout.seconds) >= 4 && Number(r.timeout.seconds) <= 5, JSON.stringify(r.timeout));

    const failed = await server.call("ap-1", "acme.Fail", {}, { timeoutMs: 5000 }).done;
    assert.equal(failed.outcomes[0]!.status, "error");
    assert.match(failed.outcomes[0]!.error!.message, /not now/);
    const missing = await server.call("ap-2", "acme.Nope", {}, { timeoutMs: 5000 }).done;
    assert.equal(missing.outcomes[0]!.error!.code, "UNAVAILABLE");
    assert.match(missing.outcomes[0]!.error!.message, /no handler for type acme\.Nope/);
  });

  it("a cancelled call sends cancel_id; a late answer is ignored", async () => {
    const hang = start(port, "ap-3", { authorization: await bearer("ap-3") }, { "acme.Hang": () => "hang" });
    await until("ap-3 connected", () =>
      server.agents().some((a) => a.name === "ap-3" && a.state === "connected"),
    );
    const call = server.call("ap-3", "acme.Hang", {}, { timeoutMs: 10_000 });
    await until("the request arrived", () => hang.requests.length === 1);
    call.cancel();
    await until("cancel_id", () => hang.cancels.length === 1);
    assert.equal(hang.cancels[0], hang.requests[0]!.id);
    hang.call.write({ response: { id: hang.requests[0]!.id, payload: pack({ boolValue: true }) } });
    await sleep(50);
    assert.equal(server.agents().find((a) => a.name === "ap-3")!.state, "connected");
  });

  it("a wrong token or no Hello ends the stream with a status; a newer stream replaces a stale one", async () => {
    const wrong = start(port, "ap-4", { authorization: await bearer("someone-else") }, {});
    await until("refused", () => wrong.ended !== undefined);
    assert.notEqual(wrong.ended!.code, grpc.status.OK);
    assert.match(wrong.ended!.details, /token is for agent someone-else, not ap-4/);

    const first = start(port, "ap-5", { authorization: await bearer("ap-5") }, {});
    await until("ap-5 connected", () =>
      server.agents().some((a) => a.name === "ap-5" && a.state === "connected"),
    );
    const second = start(port, "ap-5", { authorization: await bearer("ap-5") }, { "acme.Echo": echo });
    await until("the stale stream ended", () => first.ended !== undefined);
    assert.equal(first.ended!.code, grpc.status.ABORTED);
    const done = await server.call("ap-5", "acme.Echo", {}, { timeoutMs: 5000 }).done;
    assert.equal(done.outcomes[0]!.status, "ok");
    assert.equal(second.ended, undefined);
  });

  it("a dropped stream ends the session at once (no resume), and the agent's next stream is a new one", async () => {
    const a = start(port, "ap-6", { authorization: await bearer("ap-6") }, { "acme.Echo": echo });
    await until("ap-6 connected", () =>
      server.agents().some((x) => x.name === "ap-6" && x.state === "connected"),
    );
    a.close();
    await until("ap-6 offline", () => server.agents().find((x) => x.name === "ap-6")?.state === "offline");
    start(port, "ap-6", { authorization: await bearer("ap-6") }, { "acme.Echo": echo });
    await until("ap-6 back", () => server.agents().find((x) => x.name === "ap-6")?.state === "connected");
    const done = await server.call("ap-6", "acme.Echo", {}, { timeoutMs: 5000 }).done;
    assert.equal(done.outcomes[0]!.status, "ok");
  });

  it("a stream whose first message is not Hello is refused with INVALID_ARGUMENT", async () => {
    const client = new loaded.aperture.rpc.v1.Coordinator(
      `127.0.0.1:${port}`,
      grpc.credentials.createInsecure(),
    );
    const call = (client as unknown as { Connect(): grpc.ClientDuplexStream<unknown, unknown> }).Connect();
    const status = new Promise<grpc.StatusObject>((resolve) => call.on("status", resolve));
    call.on("error", () => {});
    call.write({ response: { id: "1", payload: Buffer.alloc(0) } });
    const s = await status;
    assert.equal(s.code, grpc.status.INVALID_ARGUMENT);
    assert.match(s.details, /expected hello msg/);
    client.close();
  });
});

describe("ApertureLink (the gateway alone, its gRPC call faked)", () => {
  it("a CALL whose JSON a Value cannot carry fails that call with INVALID_ARGUMENT, and nothing throws", () => {
    const written: Buffer[] = [];
    const fake = Object.assign(new EventEmitter(), {
      metadata: new grpc.Metadata(),
      write: (b: Buffer, cb: () => void) => {
        written.push(b);
        cb();
        return true;
      },
      end: () => {},
    });
    const link = new ApertureLink(
      fake as unknown as grpc.ServerDuplexStream<Buffer, Buffer>,
      loadApertureTypes(),
      new TrafficStats().for("grpc-aperture"),
      { host: "127.0.0.1", port: 1 },
    );
    const frames: Frame[] = [];
    link.setHandler({ onFrame: (f) => frames.push(decodeFrame(f)), onClose: () => {}, onDrain: () => {} });
    const call = (id: number, text: string): void => {
      link.send(
        encodeFrame({
          type: FrameType.CALL,
          seq: id,
          ack: 0,
          id,
          timeoutMs: 1000,
          method: "acme.Echo",
          payload: { kind: PayloadKind.JSON, bytes: Buffer.from(text) },
        }),
      );
    };
    call(1, "{not json");
    call(2, `${"[".repeat(200_000)}${"]".repeat(200_000)}`);
    const results = frames.filter((f) => f.type === FrameType.RESULT);
    assert.equal(results.length, 2);
    for (const r of results) assert.equal("error" in r && r.error.code, ErrorCode.INVALID_ARGUMENT);
    assert.equal(written.length, 0, "no request reached the agent");
    call(3, '{"ok":true}');
    assert.equal(written.length, 1, "the next call goes through");
    assert.equal(link.open, true);
  });
});
