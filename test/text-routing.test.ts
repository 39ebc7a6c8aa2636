// Text messages that reach the server's text endpoints: for the server itself, forwarded to
// one agent over its muster session, broadcast to every agent; SERVICE_UNAVAILABLE otherwise.
import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import { after, before, describe, it } from "node:test";
import { parseMessage } from "../src/text/message.js";
import { textServiceName } from "../src/text/service.js";
import { type Fleet, fleet, until } from "./support/fleet.js";
import { LineClient } from "./support/line-client.js";

describe("text routing through the server", () => {
  let f: Fleet;
  let tcpPort: number;
  let udpPort: number;
  const stops: string[] = [];
  let serverStops = 0;

  before(async () => {
    f = await fleet({
      name: "hub",
      text: {
        listen: ["tcp://127.0.0.1:0", "udp://127.0.0.1:0"],
        hooks: { stop: () => void serverStops++ },
        deliveryTimeoutMs: 500,
      },
    });
    tcpPort = (f.server.textListeners[0]!.address as { port: number }).port;
    udpPort = (f.server.textListeners[1]!.address as { port: number }).port;
    for (const name of ["web-1", "web-2"]) {
      const a = await f.addAgent(name, { textHooks: { stop: () => void stops.push(name) } });
      a.text.on("HI", (m, ctx) => ctx.send(m.reply("DAD", { from: name })));
      a.text.on("SLOW", async () => new Promise((r) => setTimeout(r, 2000)));
    }
  });
  after(() => f.close());

  it("answers messages for the server itself (no service, or muster/)", async () => {
    const replies = await LineClient.exchange(
      tcpPort,
      "ALIVE serial=1",
      "muster/ALIVE serial=2",
      "hub:muster/HELP",
    );
    assert.equal(replies.length, 3);
    assert.deepEqual(
      replies.slice(0, 2).map((l) => [parseMessage(l).command, parseMessage(l).get("serial")]),
      [
        ["ABSOLUTELY", "1"],
        ["ABSOLUTELY", "2"],
      ],
    );
    assert.match(replies[2]!, /^COMMANDS list=ALIVE,HELP,/);
  });

  it("delivers agent/COMMAND to that agent (by its text name) and relays its replies, marked", async () => {
    const replies = await LineClient.exchange(
      tcpPort,
      "web_1/HI",
      "<ops:deploy web_2/ALIVE serial=9",
      "web_1/NOPE",
    );
    assert.deepEqual(replies, ["<hub:web_1 DAD from=web-1", replies[1], "<hub:web_1 UNKNOWN command=NOPE"]);
    const alive = parseMessage(replies[1]!);
    // The reply is addressed back to the sender.
    assert.equal(alive.service, "deploy");
    assert.equal(alive.server, "ops");
    assert.equal(alive.command, "ABSOLUTELY");
    assert.equal(alive.get("serial"), "9");
    assert.equal(alive.sentFromService, "web_2");
  });

  it("broadcasts */COMMAND to every agent, each reply marked with its agent", async () => {
    const replies = await LineClient.exchange(tcpPort, "*/HI");
    assert.deepEqual(replies.sort(), ["<hub:web_1 DAD from=web-1", "<hub:web_2 DAD from=web-2"]);
  });

  it("answers SERVICE_UNAVAILABLE for an unknown or disconnected agent, another server, or a slow agent", async () => {
    const replies = await LineClient.exchange(
      tcpPort,
      "nobody/HI",
      "other:web_1/HI",
      "?:web_1/HI",
      "web_2/SLOW",
    );
    assert.deepEqual(replies, [
      "SERVICE_UNAVAILABLE command=HI;message=no agent named nobody is known;service=nobody",
      "SERVICE_UNAVAILABLE command=HI;message=no server named other;server=other",
      "SERVICE_UNAVAILABLE command=HI;message=no remote servers: this server is alone;server=?",
      replies[3],
    ]);
    assert.match(
      replies[3]!,
      /^SERVICE_UNAVAILABLE command=SLOW;message=.*(deadline|500 ms).*;service=web_2$/,
    );
  });

  it("one UDP datagram can stop an agent; the server itself only on its own STOP", async () => {
    const s = createSocket("udp4");
    await new Promise<void>((r) => s.send("web_2/STOP", udpPort, "127.0.0.1", () => r()));
    await until(() => stops.length === 1, 3000, "web-2 to be told to stop");
    assert.deepEqual(stops, ["web-2"]);
    assert.equal(serverStops, 0);
    await new Promise<void>((r) => s.send("STOP", udpPort, "127.0.0.1", () => r()));
    await until(() => serverStops === 1, 3000, "the server to be told to stop");
    s.close();
  });

  it("maps agent names to text names", () => {
    assert.equal(textServiceName("web-1"), "web_1");
    assert.equal(textServiceName("10.0.0.7"), "_10_0_0_7");
    assert.equal(textServiceName("db@eu:1"), "db_eu_1");
    assert.equal(textServiceName("plain_name"), "plain_name");
  });
});
