// Reads a numbers session from the server over a muster stream and checks the checksum. Dropped
// links are the session's business (nothing lost or repeated); if the session itself is lost
// (the server restarted, or the agent was away longer than the resume window), the stream is
// reopened from the last item received.
//
//   node dist/examples/numbers/agent.js --server tcp://127.0.0.1:7000 --n 1000 [--uuid U]

import { randomUUID } from "node:crypto";
import { parseArgs } from "node:util";
import { createAgent, ErrorCode, MusterError } from "../../src/index.js";
import { addToChecksum } from "../../src/numbers/sequence.js";
import type { NumbersResult } from "./server.js";

const { values } = parseArgs({
  options: {
    server: { type: "string", default: "tcp://127.0.0.1:7000" },
    name: { type: "string", default: `numbers-${process.pid}` },
    uuid: { type: "string" },
    n: { type: "string", default: "1000" },
    window: { type: "string", default: "65536" },
  },
});
const uuid = values.uuid ?? randomUUID();
const n = Number(values.n);
const say = (text: string): void => void process.stdout.write(`${text}\n`);

const agent = createAgent({
  name: values.name!,
  servers: [values.server!],
  reconnect: { initialMs: 100, maxMs: 2000 },
});
agent.onEvent((e) => {
  if (e.type === "resumed") say(`link back after ${e.downtimeMs} ms: session resumed, nothing lost`);
});
agent.start();
await agent.connected();
say(`connected to ${values.server}: reading ${n} numbers`);

let received = 0;
let checksum = 0;
let result: NumbersResult | undefined;
let reopened = 0;
while (result === undefined) {
  const stream = agent.stream<number>(
    "numbers",
    { uuid, n, from: received },
    { windowBytes: Number(values.window) },
  );
  try {
    for await (const x of stream) {
      received++;
      checksum = addToChecksum(checksum, x);
    }
    result = stream.result as NumbersResult;
  } catch (err) {
    const e = MusterError.from(err);
    if (e.code !== ErrorCode.SESSION_EXPIRED || reopened >= 10) {
      say(`failed after ${received} of ${n}: ${e.message}`);
      await agent.close();
      process.exit(1);
    }
    reopened++;
    say(`session lost after item ${received}: reopening from item ${received + 1}`);
    await agent.connected();
  }
}
const ok = result.count === n && received === n && result.checksum === checksum;
say(
  `${received} numbers, checksum ${checksum}, server says ${result.checksum}: ${ok ? "checksum ok" : "MISMATCH"}`,
);
await agent.close();
process.exit(ok ? 0 : 1);
