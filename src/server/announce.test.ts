import assert from "node:assert/strict";
import { it } from "node:test";
import { captureLogger, type LogLine } from "../../test/support/capture-logger.js";
import type { WelcomeServers } from "../wire/frame.js";
import { welcomeServers } from "./announce.js";

const LIST: WelcomeServers = [{ name: "a", urls: ["tcp://10.0.0.1:33076"], load: 2, state: "ready" }];

it("welcomeServers: the hook's list, checked; nothing without a hook or a list", () => {
  const lines: LogLine[] = [];
  const log = captureLogger(lines);
  assert.deepEqual(welcomeServers(undefined, log), {});
  assert.deepEqual(
    welcomeServers(() => undefined, log),
    {},
  );
  assert.deepEqual(
    welcomeServers(() => LIST, log),
    { servers: LIST },
  );
  assert.deepEqual(
    welcomeServers(() => [], log),
    { servers: [] },
  );
  assert.deepEqual(lines, []);
});

it("welcomeServers: a list peers would drop, or a hook that throws, costs the field; said once per reason", () => {
  const lines: LogLine[] = [];
  const log = captureLogger(lines);
  let mode: "big" | "throw" | "ok" = "big";
  const hook = (): WelcomeServers => {
    if (mode === "throw") throw new Error("registry not ready");
    if (mode === "ok") return LIST;
    return Array.from({ length: 65 }, (_, i) => ({ name: `s${i}`, urls: ["tcp://h:1"] }));
  };
  for (let i = 0; i < 3; i++) assert.deepEqual(welcomeServers(hook, log), {});
  mode = "throw";
  for (let i = 0; i < 3; i++) assert.deepEqual(welcomeServers(hook, log), {});
  mode = "ok";
  assert.deepEqual(welcomeServers(hook, log), { servers: LIST });
  mode = "throw";
  assert.deepEqual(welcomeServers(hook, log), {});
  assert.deepEqual(
    lines.map((l) => [l.level, l.msg, l.obj.reason]),
    [
      ["warn", "WELCOME sent without servers", "the announced list is ignored: more than 64 servers (65)"],
      ["warn", "WELCOME sent without servers", "announce() threw: registry not ready"],
      ["warn", "WELCOME sent without servers", "announce() threw: registry not ready"],
    ],
  );
});
