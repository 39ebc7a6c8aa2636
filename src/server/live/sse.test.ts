import assert from "node:assert/strict";
import { createServer, request, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, it } from "node:test";
import { SseWriter } from "./sse.js";

/** A server on loopback whose first request's response is handed over, unanswered. */
async function oneResponse(): Promise<{ server: Server; port: number; response: Promise<ServerResponse> }> {
  let arrived!: (res: ServerResponse) => void;
  const response = new Promise<ServerResponse>((resolve) => {
    arrived = resolve;
  });
  const server = createServer((_req, res) => arrived(res));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, port: (server.address() as AddressInfo).port, response };
}

describe("SseWriter", () => {
  it("a client gone before the stream began (while it was authenticated) ends it at once", async () => {
    const { server, port, response: got } = await oneResponse();
    const req = request({ port, host: "127.0.0.1", path: "/" });
    req.on("error", () => {});
    req.end();
    const res = await got;
    // The client leaves; the server's handler only gets to the stream afterwards.
    const closed = new Promise((resolve) => res.on("close", resolve));
    req.destroy();
    await closed;
    try {
      const w = new SseWriter(res, {}, 1024);
      assert.equal(w.closed, true);
      let why = "";
      w.onClose((w2) => {
        why = w2;
      });
      assert.equal(why, "closed");
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  it("sends messages with ids, and cuts a client that leaves more than its bound unread", async () => {
    const { server, port, response: got } = await oneResponse();
    const text = new Promise<string>((resolve) => {
      request({ port, host: "127.0.0.1", path: "/" }, (r) => {
        let body = "";
        r.setEncoding("utf8");
        r.on("data", (c) => {
          body += c;
          if (body.includes('data: {"n":2}')) resolve(body);
        });
      }).end();
    });
    const res = await got;
    const w = new SseWriter(res, { "x-test": "1" }, 1024 * 1024);
    w.send('{"n":1}', "e-1");
    w.sendAll([{ data: '{"n":2}' }]);
    assert.equal(await text, 'retry: 1000\n\nid: e-1\ndata: {"n":1}\n\ndata: {"n":2}\n\n');
    let why = "";
    w.onClose((reason) => {
      why = reason;
    });
    // Without a reader the bytes pile up in the response: past the bound, the stream is cut.
    res.socket!.pause();
    for (let i = 0; i < 10_000 && !w.closed; i++) w.send(JSON.stringify({ pad: "x".repeat(4096) }));
    assert.equal(w.closed, true);
    assert.match(why, /reads too slowly/);
    server.closeAllConnections();
    server.close();
  });
});
