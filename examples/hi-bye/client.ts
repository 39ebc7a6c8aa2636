// The hi-bye client: connects to its server for ever (it may start first and wait), answers
// HI with DAD, CLIMB with TOP and WHO with MOM, and quits on BYE.
//
//   node dist/examples/hi-bye/client.js [--server 127.0.0.1:3001 …] [--pause 1s,5s,30s]
//       [--logrotate-listen 127.0.0.1:3003] [--logrotate-secret CODE] [--log-file PATH] [--trace]

import { parseArgs } from "node:util";
import { createCliLogger, reopenLogFiles } from "../../src/cli/logger.js";
import { createTextClient, listenText, TextService } from "../../src/text/index.js";

const { values: flags } = parseArgs({
  options: {
    server: { type: "string", multiple: true, default: ["127.0.0.1:3001"] },
    pause: { type: "string", default: "1s,5s,30s" },
    "logrotate-listen": { type: "string", default: "127.0.0.1:3003" },
    "logrotate-secret": { type: "string" },
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
  "hi-bye-client",
);
const hooks = { logRotate: () => void reopenLogFiles() };

const service = new TextService({ logger, hooks });
const rotate = await listenText(`udp://${flags["logrotate-listen"]}`, {
  service: new TextService({ logger, hooks }),
  logger,
  ...(flags["logrotate-secret"] ? { secretCode: flags["logrotate-secret"] } : {}),
});

const client = createTextClient({
  addresses: flags.server.map((s) => (s.includes("://") || s.startsWith("unix:") ? s : `tcp://${s}`)),
  pause: flags.pause,
  service,
  logger,
  onConnected: (c) => logger.info({ server: c.address }, "connected"),
  onConnectionFailed: (error, address) =>
    logger.info({ server: address, error: error.rawMessage }, "server not there yet; waiting"),
});

service
  .on("HI", (m, ctx) => ctx.send(m.reply("DAD")))
  .on("CLIMB", (m, ctx) => ctx.send(m.reply("TOP")))
  .on("WHO", (m, ctx) => ctx.send(m.reply("MOM")))
  .on("BYE", () => {
    logger.info("BYE received: quitting");
    process.stdout.write("BYE\n");
    // Nothing left open: the process ends.
    void Promise.all([client.close(), rotate.close()]);
  });

client.start();
