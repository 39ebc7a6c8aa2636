import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { EndpointBudget, looksLikeHttp } from "./connection.js";
import { parseMessage } from "./message.js";

describe("text connections", () => {
  it("know an HTTP request or header line, which is never a text message", () => {
    for (const line of [
      "POST / HTTP/1.1\r",
      "GET /metrics HTTP/1.0",
      "OPTIONS * HTTP/1.1",
      "PRI * HTTP/2.0",
      "Host: 127.0.0.1:4040\r",
      "content-type: text/plain",
      "Origin: https://evil.example",
    ])
      assert.equal(looksLikeHttp(line), true, line);
    for (const line of [
      "ALIVE",
      "GET key=1",
      "POST",
      "web_1/ALIVE serial=7",
      "<a:b web:x/HI",
      "hub:muster/HELP",
      '{"command":"HELP"}',
    ]) {
      assert.equal(looksLikeHttp(line), false, line);
      // …and each of those is a message the parser takes.
      parseMessage(line);
    }
  });

  it("share an endpoint budget that wakes those waiting once under three quarters", () => {
    const b = new EndpointBudget(100);
    let woken = 0;
    b.change(101);
    assert.equal(b.full, true);
    b.wait(() => woken++);
    b.change(-10);
    assert.equal(woken, 0, "91 is over three quarters");
    b.change(-16);
    assert.equal([woken, b.held, b.full].join(), "1,75,false");
  });
});
