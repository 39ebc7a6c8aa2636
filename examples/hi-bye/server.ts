// The hi-bye server: greets each client with HI, answers DAD with CLIMB, TOP with WHO and
// MOM with BYE, and stops on QUIT (from any connection, such as `muster signal`).
//
//   node dist/examples/hi-bye/server.js [--listen 127.0.0.1:3001]
//       [--log-rotate-listen 127.0.0.1:3002] [--log-rotate-secret CODE] [--log-file PATH] [--trace]

import { parseArgs } from "node:util";
import { createCliLogger, reopenLogFiles } from "../../src/cli/logger.js";
import { listenText, Message, type TextListener, TextService } from "../../src/text/index.js";

const { values: flags } = parseArgs({
  options: {
    listen: { type: "string", default: "127.0.0.1:3001" },
    "log-rotate-listen": { type: "string", default: "127.0.0.1:3002" },
    "log-rotate-secret": { type: "string" },
    "log-file": { type: "string" },
    trace: { type: "boolean", default: false },
  },
});

const logger = createCliLogger(
  {
    level: "info",
    trace: flags.trace,
    json: true,
    ...(flags["log-file"] ? { file: flags["log-file"] } : {}),
  },
  "hi-bye-server",
);

const listeners: TextListener[] = [];
const quit = async (): Promise<void> => {
  logger.info("QUIT received: closing the listeners");
  await Promise.all(listeners.map((l) => l.close()));
  logger.info("bye");
};

const service = new TextService({ logger, hooks: { logRotate: () => void reopenLogFiles() } });
service
  .on("DAD", (m, ctx) => ctx.send(m.reply("CLIMB")))
  .on("TOP", (m, ctx) => ctx.send(m.reply("WHO")))
  .on("MOM", (m, ctx) => ctx.send(m.reply("BYE")))
  .on("QUIT", () => void quit());

listeners.push(
  await listenText(`tcp://${flags.listen}`, {
    service,
    logger,
    // Every new client is greeted first.
    onConnection: (ctx) => ctx.send(new Message({ command: "HI" })),
  }),
);
// LOG_ROTATE (and the other built-ins) over UDP, as logrotate's postrotate would send it.
listeners.push(
  await listenText(`udp://${flags["log-rotate-listen"]}`, {
    service: new TextService({ logger, hooks: { logRotate: () => void reopenLogFiles() } }),
    logger,
    ...(flags["log-rotate-secret"] ? { secretCode: flags["log-rotate-secret"] } : {}),
  }),
);
for (const l of listeners) process.stdout.write(`listening on ${l.url}\n`);
