import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isMusterError } from "../../test/support/errors.js";
import { ErrorCode } from "../errors/codes.js";
import {
  createDispatcher,
  type DispatchContext,
  type Dispatcher,
  type DispatchResult,
  type ParamDef,
  Priority,
} from "./dispatcher.js";
import { formatMessage, type Message, parseMessage } from "./message.js";

// ---------------------------------------------------------------------------------------
// Helpers

/** A context that keeps what handlers send, as lines. */
interface Recorder extends DispatchContext {
  sent: string[];
}

function recorder(): Recorder {
  const sent: string[] = [];
  return {
    sent,
    send(message: Message) {
      sent.push(formatMessage(message));
    },
  };
}

const invalid = (message: string) => isMusterError(ErrorCode.INVALID_ARGUMENT, message);

/** A dispatcher whose handlers write their name into `log`. */
function logging(): { d: Dispatcher; log: string[]; h: (name: string) => () => void } {
  const log: string[] = [];
  return { d: createDispatcher(), log, h: (name) => () => void log.push(name) };
}

async function run(d: Dispatcher, line: string, ctx: DispatchContext = recorder()): Promise<DispatchResult> {
  return d.dispatch(parseMessage(line), ctx);
}

const HANDLED = { status: "handled" };
const UNHANDLED = { status: "unhandled" };

// ---------------------------------------------------------------------------------------
// Matching

describe("matching", () => {
  it("runs the first exact match only", async () => {
    const { d, log, h } = logging();
    d.on("HI", h("first"));
    d.on("HI", h("second"));
    d.on("BYE", h("bye"));
    assert.deepEqual(await run(d, "HI"), HANDLED);
    assert.deepEqual(log, ["first"]);
  });

  it("orders by ascending priority, in the order added within one priority", async () => {
    const { d, log, h } = logging();
    d.on("HI", h("system"), { priority: Priority.SYSTEM });
    d.on("HI", h("late user"), { priority: 8 });
    d.on("HI", h("user a"), { passThrough: true });
    d.on("HI", h("user b"), { passThrough: true });
    d.on("HI", h("callback"), { priority: Priority.CALLBACK, passThrough: true });
    d.on("HI", h("last"), { priority: Priority.MAX });
    assert.deepEqual(await run(d, "HI"), HANDLED);
    assert.deepEqual(log, ["callback", "user a", "user b", "late user"]);
  });

  it("lets an application handler override a built-in one", async () => {
    const { d, log, h } = logging();
    d.on("STOP", h("built-in"), { priority: Priority.SYSTEM });
    d.on("STOP", h("application"));
    await run(d, "STOP");
    assert.deepEqual(log, ["application"]);
    assert.deepEqual(Priority, { CALLBACK: 0, USER: 7, SYSTEM: 10, MAX: 15 });
  });

  it("goes on after a pass-through, and a pass-through alone handles the message", async () => {
    const { d, log, h } = logging();
    d.on("HI", h("tap"), { passThrough: true, priority: Priority.CALLBACK });
    d.on("HI", h("hi"));
    d.catchAll(h("catch-all"));
    assert.deepEqual(await run(d, "HI"), HANDLED);
    assert.deepEqual(log, ["tap", "hi"]);

    log.length = 0;
    const only = logging();
    only.d.on("TAP", only.h("tap"), { passThrough: true });
    only.d.catchAll(only.h("catch-all"));
    assert.deepEqual(await run(only.d, "TAP"), HANDLED);
    assert.deepEqual(only.log, ["tap"], "the catch-all runs only when no match ran");
  });

  it("matches with predicates, stopping or passing through", async () => {
    const { d, log, h } = logging();
    d.match(() => true, h("every message"), { passThrough: true, priority: Priority.CALLBACK });
    d.match((m) => m.command.startsWith("FLUID_"), h("fluid"));
    d.match((m) => m.service === "cluckd", h("to cluckd"));
    await run(d, "FLUID_SET name=x");
    await run(d, "cluckd/LOCK");
    assert.deepEqual(await run(d, "OTHER"), HANDLED, "the pass-through predicate ran");
    assert.deepEqual(log, ["every message", "fluid", "every message", "to cluckd", "every message"]);
  });

  it("runs the catch-all last, when nothing else matched", async () => {
    const d = createDispatcher();
    d.on("HI", () => {});
    d.catchAll((m, ctx) => ctx.send(m.reply("UNKNOWN", { command: m.command })));
    const ctx = recorder();
    assert.deepEqual(await run(d, "<host:ed_signal FOO x=1", ctx), HANDLED);
    assert.deepEqual(await run(d, "HI", ctx), HANDLED);
    assert.deepEqual(ctx.sent, ["host:ed_signal/UNKNOWN command=FOO"]);
    assert.throws(
      () => d.catchAll(() => {}),
      invalid("a catch-all is already set; remove it (by its tag) first"),
    );
  });

  it("reports a message nothing matched", async () => {
    const { d, log, h } = logging();
    d.on("HI", h("hi"));
    assert.deepEqual(await run(d, "BYE"), UNHANDLED);
    assert.deepEqual(await run(createDispatcher(), "BYE"), UNHANDLED);
    assert.deepEqual(log, []);
  });

  it("awaits each handler before the next one", async () => {
    const log: string[] = [];
    const d = createDispatcher();
    d.on(
      "HI",
      async () => {
        await Promise.resolve();
        await Promise.resolve();
        log.push("slow pass-through");
      },
      { passThrough: true },
    );
    d.on("HI", () => void log.push("final"));
    await run(d, "HI");
    assert.deepEqual(log, ["slow pass-through", "final"]);
  });

  it("lets a handler's or a predicate's error through", async () => {
    const boom = new Error("boom");
    const d = createDispatcher();
    d.on("SYNC", () => {
      throw boom;
    });
    d.on("ASYNC", async () => {
      throw boom;
    });
    d.match(
      (m) => {
        if (m.command === "BAD") throw boom;
        return false;
      },
      () => {},
    );
    for (const line of ["SYNC", "ASYNC", "BAD"]) await assert.rejects(run(d, line), boom);
  });

  it("keeps the list a dispatch started with when a handler changes it", async () => {
    const { d, log, h } = logging();
    const tag = d.nextTag();
    d.on(
      "HI",
      () => {
        log.push("remover");
        d.removeMatches(tag);
        d.on("HI", h("added during the dispatch"), { passThrough: true });
      },
      { passThrough: true, priority: 0 },
    );
    d.on("HI", h("tagged"), { tag });
    await run(d, "HI");
    assert.deepEqual(log, ["remover", "tagged"]);
    log.length = 0;
    await run(d, "HI");
    assert.deepEqual(log, ["remover", "added during the dispatch"]);
  });

  it("refuses bad matches with a precise reason", () => {
    const d = createDispatcher();
    const noop = (): void => {};
    assert.throws(() => d.on("hi", noop), invalid('matched command: command "hi" must be uppercase: HI'));
    assert.throws(() => d.on("", noop), invalid("matched command: command cannot be empty"));
    assert.throws(
      () => d.on("HI", noop, { priority: 16 }),
      invalid("priority must be an integer 0–15, got 16"),
    );
    assert.throws(
      () => d.on("HI", noop, { priority: -1 }),
      invalid("priority must be an integer 0–15, got -1"),
    );
    assert.throws(
      () => d.on("HI", noop, { priority: 1.5 }),
      invalid("priority must be an integer 0–15, got 1.5"),
    );
    assert.throws(
      () => d.on("HI", noop, { tag: 0 }),
      invalid("a tag must be a positive integer or a non-empty string, got 0"),
    );
    assert.throws(
      () => d.on("HI", "nope" as unknown as () => void),
      invalid("a handler must be a function, got string"),
    );
    assert.throws(
      () => d.match("HI" as unknown as () => boolean, noop),
      invalid("a predicate must be a function, got string"),
    );
    assert.throws(
      () => d.match(() => true, noop, { commands: ["ok", "OK"] }),
      invalid('declared command: command "ok" must be uppercase: OK'),
    );
    assert.deepEqual(d.commands(), [], "nothing was added by the refused calls");
  });
});

describe("tags", () => {
  it("remove a group of matches, the catch-all included, and nothing else", async () => {
    const { d, log, h } = logging();
    const fluid = d.nextTag();
    d.on("FLUID_SET", h("set"), { tag: fluid });
    d.on("FLUID_GET", h("get"), { tag: fluid });
    d.match((m) => m.command.startsWith("FLUID_"), h("other fluid"), { tag: fluid });
    d.on("HI", h("hi"));
    d.on("BYE", h("bye"), { tag: "session" });
    d.catchAll(h("catch-all"), { tag: fluid });
    assert.equal(d.removeMatches(fluid), 4);
    assert.equal(d.removeMatches(fluid), 0);
    assert.deepEqual(await run(d, "FLUID_SET"), UNHANDLED);
    await run(d, "HI");
    await run(d, "BYE");
    assert.equal(d.removeMatches("session"), 1);
    await run(d, "BYE");
    assert.deepEqual(log, ["hi", "bye"]);
    d.catchAll(h("new catch-all"));
    await run(d, "BYE");
    assert.deepEqual(log, ["hi", "bye", "new catch-all"]);
  });

  it("are fresh and never 0", () => {
    const d = createDispatcher();
    const tags = [d.nextTag(), d.nextTag(), d.nextTag()];
    assert.deepEqual(tags, [1, 2, 3]);
    assert.throws(
      () => d.removeMatches(""),
      invalid("a tag must be a positive integer or a non-empty string, got "),
    );
  });
});

describe("commands()", () => {
  it("lists exact, pass-through and declared predicate commands once, sorted", () => {
    const d = createDispatcher();
    const noop = (): void => {};
    d.on("STOP", noop, { priority: Priority.SYSTEM });
    d.on("STOP", noop);
    d.on("ALIVE", noop, { passThrough: true });
    d.match((m) => m.command.startsWith("FLUID_"), noop, { commands: ["FLUID_SET", "FLUID_GET"] });
    d.match(() => true, noop, { passThrough: true });
    d.catchAll(noop);
    assert.deepEqual(d.commands(), ["ALIVE", "FLUID_GET", "FLUID_SET", "STOP"]);
    assert.equal(`COMMANDS list=${d.commands().join(",")}`, "COMMANDS list=ALIVE,FLUID_GET,FLUID_SET,STOP");
  });
});

// ---------------------------------------------------------------------------------------
// Parameter definitions

describe("parameter definitions", () => {
  /** Dispatches `line` to a dispatcher where `command` has `defs`; returns what happened. */
  async function check(
    defs: readonly ParamDef[],
    line: string,
  ): Promise<{ result: DispatchResult; ran: boolean; sent: string[] }> {
    const d = createDispatcher();
    const command = parseMessage(line).command;
    d.define(command, defs);
    let ran = false;
    d.on(command, () => {
      ran = true;
    });
    const ctx = recorder();
    const result = await run(d, line, ctx);
    return { result, ran, sent: ctx.sent };
  }

  async function passes(defs: readonly ParamDef[], line: string): Promise<void> {
    const { result, ran, sent } = await check(defs, line);
    assert.deepEqual(result, HANDLED, line);
    assert.ok(ran, line);
    assert.deepEqual(sent, [], line);
  }

  async function fails(defs: readonly ParamDef[], line: string, problem: string): Promise<void> {
    const { result, ran, sent } = await check(defs, line);
    assert.deepEqual(result, { status: "invalid", problems: [problem] }, line);
    assert.equal(ran, false, `${line}: the handler must not run`);
    const command = parseMessage(line).command;
    assert.deepEqual(sent, [
      formatMessage(parseMessage("INVALID").with({ params: { command, message: problem } })),
    ]);
  }

  it("default to required and may be empty", async () => {
    const defs = [{ name: "list" }];
    await passes(defs, "COMMANDS list=A,B");
    await passes(defs, "COMMANDS list=");
    await fails(defs, "COMMANDS", "parameter list is required");
  });

  it("apply each flag", async () => {
    await passes([{ name: "serial", flags: ["optional"] }], "ALIVE");
    await passes([{ name: "serial", flags: ["optional"] }], "ALIVE serial=3");
    await fails(
      [{ name: "serial", flags: ["optional"] }],
      "ALIVE serial=",
      "parameter serial cannot be empty",
    );
    await passes([{ name: "serial", flags: [] }], "ALIVE");
    await fails([{ name: "x", flags: ["required"] }], "X x=", "parameter x cannot be empty");
    await fails([{ name: "x", flags: ["required"] }], "X y=1", "parameter x is required");
    await passes([{ name: "x", flags: ["empty"] }], "X");
    await passes([{ name: "x", flags: ["empty"] }], "X x=");
    await passes([{ name: "x", flags: ["forbidden"] }], "X y=1");
    await fails([{ name: "x", flags: ["forbidden"] }], "X x=1", "parameter x is forbidden");
    await fails([{ name: "x", flags: ["forbidden", "empty"] }], "X x=", "parameter x is forbidden");
    // Parameters the definition does not name are left alone, as upstream.
    await passes([{ name: "x" }], "X x=1;extra=2");
  });

  it("check each type; an allowed empty value skips the type check", async () => {
    const integer: ParamDef[] = [{ name: "pid", type: "integer" }];
    await passes(integer, "LOCK pid=1234");
    await passes(integer, "LOCK pid=-9223372036854775808");
    await passes(integer, "LOCK pid=");
    await fails(
      integer,
      "LOCK pid=12x",
      'parameter pid must be an integer (digits with an optional sign), got "12x"',
    );
    await fails(
      integer,
      "LOCK pid=9223372036854775808",
      'parameter pid must be an integer within 64 bits (−2⁶³…2⁶³−1), got "9223372036854775808"',
    );

    const address: ParamDef[] = [{ name: "my_address", type: "address", flags: ["optional"] }];
    await passes(address, "READY my_address=10.0.0.1:4040");
    await passes(address, "READY my_address=[::1]:4040");
    await passes(address, "READY my_address=::1");
    await passes(address, "READY");
    await fails(
      address,
      "READY my_address=10.0.0.1:99999",
      'parameter my_address must be an address such as 10.0.0.1:4040 or [::1]:4040, got "10.0.0.1:99999": port "99999" is not 0–65535',
    );

    const timespec: ParamDef[] = [{ name: "reply_timestamp", type: "timespec", flags: ["required"] }];
    await passes(timespec, "ABSOLUTELY reply_timestamp=1725000000.123456789");
    await passes(timespec, "ABSOLUTELY reply_timestamp=1725000000");
    await fails(
      timespec,
      "ABSOLUTELY reply_timestamp=soon",
      'parameter reply_timestamp must be a timespec (<seconds>[.<nanoseconds>]), got "soon"',
    );

    await passes([{ name: "s", type: "string", flags: ["required"] }], "X s=anything;at=all");
  });

  it("answer INVALID to the sender with every problem, and run no handler at all", async () => {
    const d = createDispatcher();
    d.define("LOCK", [
      { name: "object_name", flags: ["required"] },
      { name: "pid", type: "integer", flags: ["required"] },
      { name: "timeout", type: "timespec", flags: ["required"] },
      { name: "debug", flags: ["forbidden"] },
    ]);
    const log: string[] = [];
    d.on("LOCK", () => void log.push("tap"), { passThrough: true, priority: Priority.CALLBACK });
    d.on("LOCK", () => void log.push("lock"));
    d.catchAll(() => void log.push("catch-all"));
    const ctx = recorder();
    const result = await run(d, "<host:cluckd_client cluckd/LOCK pid=x;timeout=1725000000.5;debug=1", ctx);
    const problems = [
      "parameter object_name is required",
      'parameter pid must be an integer (digits with an optional sign), got "x"',
      "parameter debug is forbidden",
    ];
    assert.deepEqual(result, { status: "invalid", problems });
    assert.deepEqual(log, []);
    assert.deepEqual(ctx.sent, [
      'host:cluckd_client/INVALID command=LOCK;message="parameter object_name is required; ' +
        'parameter pid must be an integer (digits with an optional sign), got \\"x\\"; parameter debug is forbidden"',
    ]);
    assert.equal(parseMessage(ctx.sent[0]!).get("message"), problems.join("; "));
    assert.deepEqual(d.validate(parseMessage("LOCK pid=x;timeout=1;debug=1")), problems);
    assert.deepEqual(d.validate(parseMessage("LOCK object_name=a;pid=1;timeout=1")), []);
  });

  it("apply to a message only the catch-all would take", async () => {
    const d = createDispatcher();
    d.define("ABSOLUTELY", [{ name: "reply_timestamp", type: "timespec", flags: ["required"] }]);
    let ran = false;
    d.catchAll(() => {
      ran = true;
    });
    const ctx = recorder();
    const result = await run(d, "ABSOLUTELY", ctx);
    assert.deepEqual(result, { status: "invalid", problems: ["parameter reply_timestamp is required"] });
    assert.equal(ran, false);
    assert.deepEqual(ctx.sent, ["INVALID command=ABSOLUTELY;message=parameter reply_timestamp is required"]);
  });

  it("are not checked for a message nothing matches", async () => {
    const d = createDispatcher({ definitions: { LOCK: [{ name: "pid" }] } });
    const ctx = recorder();
    assert.deepEqual(await run(d, "LOCK", ctx), UNHANDLED);
    assert.deepEqual(ctx.sent, []);
  });

  it("never answer INVALID to an INVALID, and can stay silent", async () => {
    const d = createDispatcher();
    d.define("INVALID", [{ name: "command", flags: ["forbidden"] }]);
    d.on("INVALID", () => {});
    const ctx = recorder();
    assert.deepEqual(await run(d, "INVALID command=X", ctx), {
      status: "invalid",
      problems: ["parameter command is forbidden"],
    });
    assert.deepEqual(ctx.sent, []);

    const quiet = createDispatcher({ replyInvalid: false, definitions: { LOCK: [{ name: "pid" }] } });
    quiet.on("LOCK", () => {});
    assert.deepEqual(await run(quiet, "LOCK", ctx), {
      status: "invalid",
      problems: ["parameter pid is required"],
    });
    assert.deepEqual(ctx.sent, []);
  });

  it("are kept as given, with defaults filled in, and can be replaced", () => {
    const d = createDispatcher({ definitions: { ALIVE: [{ name: "serial", flags: ["optional"] }] } });
    assert.deepEqual(d.definition("ALIVE"), [{ name: "serial", type: "string", flags: ["optional"] }]);
    d.define("ALIVE", [{ name: "serial", type: "integer" }]);
    assert.deepEqual(d.definition("ALIVE"), [
      { name: "serial", type: "integer", flags: ["required", "empty"] },
    ]);
    assert.ok(Object.isFrozen(d.definition("ALIVE")));
    assert.equal(d.definition("HELP"), undefined);
    assert.deepEqual(d.validate(parseMessage("HELP anything=1")), []);
  });

  it("refuse bad definitions with a precise reason", () => {
    const d = createDispatcher();
    const CASES: [string, ParamDef[], string][] = [
      ["lock", [], 'defined command: command "lock" must be uppercase: LOCK'],
      [
        "LOCK",
        [{ name: "a-b" }],
        'definition of LOCK: parameter name "a-b" has "-" at position 2: only ASCII letters, digits and _ are allowed',
      ],
      ["LOCK", [{ name: "pid" }, { name: "pid" }], "definition of LOCK: parameter pid is defined twice"],
      [
        "LOCK",
        [{ name: "pid", type: "number" as "integer" }],
        "definition of LOCK: parameter pid has type number; use string, integer, address, timespec",
      ],
      [
        "LOCK",
        [{ name: "pid", flags: ["defined" as "optional"] }],
        "definition of LOCK: parameter pid has flag defined; use required, empty, forbidden, optional",
      ],
      [
        "LOCK",
        [{ name: "pid", flags: ["required", "forbidden"] }],
        "definition of LOCK: parameter pid cannot be both required and forbidden",
      ],
    ];
    for (const [command, defs, message] of CASES)
      assert.throws(() => d.define(command, defs), invalid(message), message);
    assert.throws(
      () => createDispatcher({ definitions: { bad: [] } }),
      invalid('defined command: command "bad" must be uppercase: BAD'),
    );
    assert.equal(d.definition("LOCK"), undefined, "a refused definition leaves nothing behind");
  });
});

// ---------------------------------------------------------------------------------------
// The exchange of upstream's example client and server, over a line pipe between two dispatchers

describe("the HI → DAD → CLIMB → TOP → WHO → MOM → BYE exchange", () => {
  it("runs with every reply addressed by reply()", async () => {
    const transcript: string[] = [];
    const queue: { to: "client" | "server"; line: string }[] = [];
    const link = (to: "client" | "server"): DispatchContext => ({
      send(message) {
        queue.push({ to, line: formatMessage(message) });
      },
    });
    const toClient = link("client");
    const toServer = link("server");

    const server = createDispatcher();
    const replies: Record<string, string> = { DAD: "CLIMB", TOP: "WHO", MOM: "BYE" };
    for (const [asked, answer] of Object.entries(replies))
      server.on(asked, (m, ctx) => ctx.send(m.reply(answer)));
    let quit = false;
    server.on("QUIT", () => {
      quit = true;
    });
    server.catchAll((m, ctx) => ctx.send(m.reply("UNKNOWN", { command: m.command })));

    const client = createDispatcher();
    const next: Record<string, string> = { HI: "DAD", CLIMB: "TOP", WHO: "MOM" };
    for (const [heard, say] of Object.entries(next)) client.on(heard, (m, ctx) => ctx.send(m.reply(say)));
    let done = false;
    client.on("BYE", () => {
      done = true;
    });
    client.catchAll(() => {
      throw new Error("the client got a message it does not know");
    });

    await toClient.send(parseMessage("HI"));
    while (queue.length > 0) {
      const { to, line } = queue.shift()!;
      transcript.push(`${to === "client" ? "S → C" : "C → S"} ${line}`);
      const result = await (to === "client" ? client : server).dispatch(
        parseMessage(line),
        to === "client" ? toServer : toClient,
      );
      assert.deepEqual(result, HANDLED);
    }
    assert.ok(done);
    assert.deepEqual(transcript, [
      "S → C HI",
      "C → S DAD",
      "S → C CLIMB",
      "C → S TOP",
      "S → C WHO",
      "C → S MOM",
      "S → C BYE",
    ]);

    const ctx = recorder();
    await run(server, "NOPE", ctx);
    await run(server, "QUIT", ctx);
    assert.ok(quit);
    assert.deepEqual(ctx.sent, ["UNKNOWN command=NOPE"]);
  });
});
