import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { isMusterError } from "../../test/support/errors.js";
import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import {
  checkMessageName,
  formatMessage,
  MESSAGE_LIMITS,
  Message,
  type MessageInit,
  messageFromJson,
  messageToJson,
  type ParseOptions,
  parseMessage,
} from "./message.js";

// ---------------------------------------------------------------------------------------
// Helpers

interface Plain {
  sentFromServer: string;
  sentFromService: string;
  server: string;
  service: string;
  command: string;
  params: [string, string][];
}

function plain(m: Message): Plain {
  return {
    sentFromServer: m.sentFromServer,
    sentFromService: m.sentFromService,
    server: m.server,
    service: m.service,
    command: m.command,
    params: [...m.params],
  };
}

function expected(fields: Partial<Plain> & { command: string }): Plain {
  return { sentFromServer: "", sentFromService: "", server: "", service: "", params: [], ...fields };
}

const invalid = (message: string) => isMusterError(ErrorCode.INVALID_ARGUMENT, message);

function refuses(line: string, message: string, options?: ParseOptions): void {
  assert.throws(() => parseMessage(line, options), invalid(message), JSON.stringify(line));
}

// ---------------------------------------------------------------------------------------
// Golden lines

describe("golden lines (upstream's examples and more)", () => {
  const GOLDEN: [string, Plain][] = [
    ["HI", expected({ command: "HI" })],
    [
      "<myhost:ed_signal cluckd/STOP",
      expected({
        sentFromServer: "myhost",
        sentFromService: "ed_signal",
        service: "cluckd",
        command: "STOP",
      }),
    ],
    [
      "snap:cluckd/LOCK object_name=abc;pid=1234;timeout=1725000000.000000000",
      expected({
        server: "snap",
        service: "cluckd",
        command: "LOCK",
        params: [
          ["object_name", "abc"],
          ["pid", "1234"],
          ["timeout", "1725000000.000000000"],
        ],
      }),
    ],
    [
      "ALIVE serial=17;timestamp=1725000000.123456789",
      expected({
        command: "ALIVE",
        params: [
          ["serial", "17"],
          ["timestamp", "1725000000.123456789"],
        ],
      }),
    ],
    ["UNKNOWN command=FOO", expected({ command: "UNKNOWN", params: [["command", "FOO"]] })],
    [
      "COMMANDS list=ALIVE,HELP,INVALID,LEAK,LOG_ROTATE,QUITTING,READY,RESTART,SERVICE_UNAVAILABLE,STOP,UNKNOWN",
      expected({
        command: "COMMANDS",
        params: [
          [
            "list",
            "ALIVE,HELP,INVALID,LEAK,LOG_ROTATE,QUITTING,READY,RESTART,SERVICE_UNAVAILABLE,STOP,UNKNOWN",
          ],
        ],
      }),
    ],
    // Special destinations, sent-from with an empty side, mixed-case names.
    ["*:*/STOP", expected({ server: "*", service: "*", command: "STOP" })],
    [".:./HELP", expected({ server: ".", service: ".", command: "HELP" })],
    ["?:?/QUITTING", expected({ server: "?", service: "?", command: "QUITTING" })],
    ["*/LOG_ROTATE", expected({ service: "*", command: "LOG_ROTATE" })],
    ["<host: READY", expected({ sentFromServer: "host", command: "READY" })],
    ["<:svc READY", expected({ sentFromService: "svc", command: "READY" })],
    [
      "<Node_1:MyService _sys:snap_lock/LOCK_ENTERED Key=1;_x=",
      expected({
        sentFromServer: "Node_1",
        sentFromService: "MyService",
        server: "_sys",
        service: "snap_lock",
        command: "LOCK_ENTERED",
        params: [
          ["Key", "1"],
          ["_x", ""],
        ],
      }),
    ],
  ];

  for (const [line, fields] of GOLDEN) {
    it(`reads and writes back ${line}`, () => {
      const m = parseMessage(line);
      assert.deepEqual(plain(m), fields);
      assert.equal(formatMessage(m), line);
      assert.equal(String(m), line);
    });
  }
});

describe("value quoting and escaping", () => {
  const CASES: [string, string][] = [
    ["plain", "HI v=plain"],
    ["", "HI v="],
    ["x;y", 'HI v="x;y"'],
    ['"q', 'HI v="\\"q"'],
    ['say "hi"', 'HI v=say "hi"'],
    ['x;"', 'HI v="x;\\""'],
    ["1\n2\r3", "HI v=1\\n2\\r3"],
    ["c:\\dir\\n", "HI v=c:\\\\dir\\\\n"],
    ["x ", 'HI v="x "'],
    ["x\t", 'HI v="x\t"'],
    [" lead", "HI v= lead"],
    ["tab\tinside", "HI v=tab\tinside"],
    ["héllo wörld ✓ 🎉", "HI v=héllo wörld ✓ 🎉"],
    ["a=b=c", "HI v=a=b=c"],
    ["<x:y z/W", "HI v=<x:y z/W"],
    // Upstream's reader misreads this one (a quoted value ending in a backslash); ours does not.
    ["x;\\", 'HI v="x;\\\\"'],
  ];
  for (const [value, line] of CASES) {
    it(`writes ${JSON.stringify(value)} as ${line} and reads it back`, () => {
      const m = new Message({ command: "HI", params: { v: value } });
      assert.equal(formatMessage(m), line);
      assert.equal(parseMessage(line).get("v"), value);
    });
  }

  it("reads escapes the writer never produces as upstream does", () => {
    // An unknown escape stays as it is; outside quotes a \" is two characters.
    assert.equal(parseMessage("HI v=\\q\\").get("v"), "\\q\\");
    assert.equal(parseMessage('HI v=a\\"b').get("v"), 'a\\"b');
    assert.equal(parseMessage('HI v="a\\qb"').get("v"), "a\\qb");
    assert.equal(parseMessage('HI v="a\\nb\\rc\\\\d"').get("v"), "a\nb\rc\\d");
  });
});

describe("canonical form", () => {
  const CANONICAL: [string, string][] = [
    ["HI b=2;a=1;", "HI a=1;b=2"],
    ["HI a=1;", "HI a=1"],
    ["  HI a=1\r\n", "HI a=1"],
    ["\t\v\fHI\r", "HI"],
    ["<: HI", "HI"],
    ['HI a="plain"', "HI a=plain"],
    ['HI a=""', "HI a="],
    ["HI a=\\q", "HI a=\\\\q"],
    ["HI Z=1;_=2;a=3;A=4", "HI A=4;Z=1;_=2;a=3"],
    // The trailing blank of the last value is the line's own: the reader trims it.
    ["HI a=x ", "HI a=x"],
  ];
  for (const [line, canonical] of CANONICAL) {
    it(`${JSON.stringify(line)} → ${canonical}`, () => {
      assert.equal(formatMessage(parseMessage(line)), canonical);
    });
  }
});

// ---------------------------------------------------------------------------------------
// Malformed lines

describe("malformed lines", () => {
  const MALFORMED: [string, string][] = [
    ["", "empty message: a line needs at least a command"],
    [" \t\r\n", "empty message: a line needs at least a command"],
    ["hi", 'column 1: command "hi" must be uppercase: HI'],
    ["Hi there=1", 'column 1: command "Hi" must be uppercase: HI'],
    ["1HI", 'column 1: command "1HI" cannot start with a digit'],
    ["HI-X", 'column 1: command "HI-X" has "-" at position 3: only A–Z, 0–9 and _ are allowed'],
    ["HÉ", 'column 1: command "HÉ" has "É" at position 2: only A–Z, 0–9 and _ are allowed'],
    ["HI\ta=1", 'column 1: command "HI\\ta=1" has "\\t" at position 3: only A–Z, 0–9 and _ are allowed'],
    ["[]", 'column 1: command "[]" has "[" at position 1: only A–Z, 0–9 and _ are allowed'],
    ["HI\u0000 a=1", "column 3: NUL character; a NUL ends a message"],
    // Sent-from prefix
    [
      "<a b:c HI",
      "column 3: space in the sent-from server: the prefix is <server:service followed by a space",
    ],
    ["<abc HI", "column 5: space in the sent-from server: the prefix is <server:service followed by a space"],
    ["<abc", "column 1: sent-from prefix has no ':': the prefix is <server:service"],
    ["<a:b", "column 1: sent-from prefix is not followed by a space and a command"],
    ["<a:b  HI", "column 6: command is missing"],
    [
      "<a.b:c HI",
      'column 2: sent-from server "a.b" has "." at position 2: only ASCII letters, digits and _ are allowed',
    ],
    [
      "<a:* HI",
      'column 4: sent-from service "*" has "*" at position 1: only ASCII letters, digits and _ are allowed',
    ],
    [
      "<a:b:c HI",
      'column 4: sent-from service "b:c" has ":" at position 2: only ASCII letters, digits and _ are allowed',
    ],
    ["<1a:b HI", 'column 2: sent-from server "1a" cannot start with a digit'],
    // Destination
    [":svc/HI", "column 1: empty server name before ':'"],
    ["/HI", "column 1: empty service name before '/'"],
    ["srv:/HI", "column 5: empty service name before '/'"],
    ["a::HI", "column 3: second ':': the form is server:service/COMMAND"],
    ["a:b:c/HI", "column 4: second ':': the form is server:service/COMMAND"],
    ["a/b:HI", "column 4: ':' after the service's '/': the form is server:service/COMMAND"],
    ["a//HI", "column 3: second '/': the form is server:service/COMMAND"],
    ["srv:HI", 'column 1: server "srv" has no service: the form is server:service/COMMAND'],
    ["srv:", "column 5: command is missing"],
    ["svc/", "column 5: command is missing"],
    ["svc/ a=1", "column 5: command is missing"],
    [
      "a.b/HI",
      'column 1: service "a.b" has "." at position 2: only ASCII letters, digits and _ (or exactly ".", "*" or "?") are allowed; did you mean a_b? (an agent\'s text name has _ for each other character)',
    ],
    [
      "**/HI",
      'column 1: service "**" has "*" at position 1: only ASCII letters, digits and _ (or exactly ".", "*" or "?") are allowed',
    ],
    ["9srv:svc/HI", 'column 1: server "9srv" cannot start with a digit'],
    ["svc/hi", 'column 5: command "hi" must be uppercase: HI'],
    // Parameters
    ["HI =1", "column 4: empty parameter name"],
    ["HI a=1;;", "column 8: empty parameter name"],
    ["HI a=1;=2", "column 8: empty parameter name"],
    ["HI a", "column 4: parameter a has no '=': the form is name=value"],
    ["HI a=1;b", "column 8: parameter b has no '=': the form is name=value"],
    ["HI flag;x=1", "column 4: parameter \"flag\" has no '=': the form is name=value"],
    [
      "HI  a=1",
      'column 4: parameter name " a" has " " at position 1: only ASCII letters, digits and _ are allowed',
    ],
    [
      "HI a b=1",
      'column 4: parameter name "a b" has " " at position 2: only ASCII letters, digits and _ are allowed',
    ],
    [
      "HI a=1; b=2",
      'column 8: parameter name " b" has " " at position 1: only ASCII letters, digits and _ are allowed',
    ],
    [
      "HI a-b=1",
      'column 4: parameter name "a-b" has "-" at position 2: only ASCII letters, digits and _ are allowed',
    ],
    ["HI 2a=1", 'column 4: parameter name "2a" cannot start with a digit'],
    ['HI a="x', "column 6: quoted value of parameter a has no closing quote"],
    ['HI a="x\\"', "column 6: quoted value of parameter a has no closing quote"],
    ['HI a="', "column 6: quoted value of parameter a has no closing quote"],
    [
      'HI a="x"y',
      `column 9: "y" after the closing quote of parameter a; expected ';' or the end of the line`,
    ],
    [
      'HI a="x" ;b=1',
      `column 9: " " after the closing quote of parameter a; expected ';' or the end of the line`,
    ],
    ["HI a=1;a=2", "column 8: parameter a appears twice"],
    ["HI a=1;b=2;a=3", "column 12: parameter a appears twice"],
  ];
  for (const [line, message] of MALFORMED) {
    it(`${JSON.stringify(line)}: ${message}`, () => refuses(line, message));
  }

  it("names columns in the line as given, blanks included", () => {
    refuses("  hi", 'column 3: command "hi" must be uppercase: HI');
  });
});

describe("limits", () => {
  const MiB = MESSAGE_LIMITS.maxLineBytes;

  it("are 1 MiB per line and 1000 parameters by default", () => {
    assert.equal(MiB, 1_048_576);
    assert.equal(MESSAGE_LIMITS.maxParams, 1000);
  });

  it("accept a line of exactly the byte limit and refuse one byte more", () => {
    assert.equal(parseMessage(`HI a=${"x".repeat(MiB - 5)}`).get("a")!.length, MiB - 5);
    refuses(`HI a=${"x".repeat(MiB - 4)}`, "message is over the 1048576-byte limit (at least 1048577 bytes)");
  });

  it("count UTF-8 bytes, not characters", () => {
    const line = `HI a=${"é".repeat(600_000)}`;
    assert.ok(line.length < MiB);
    refuses(line, "message is 1200005 bytes, over the 1048576-byte limit");
    assert.equal(parseMessage(`HI a=${"é".repeat(524_285)}`).get("a")!.length, 524_285);
  });

  it("apply to blanks around the line and to JSON too", () => {
    refuses(`HI${" ".repeat(MiB)}`, "message is over the 1048576-byte limit (at least 1048578 bytes)");
    assert.throws(
      () => messageFromJson(`{"command":"HI","x":"${"x".repeat(MiB)}"}`),
      invalid("message is over the 1048576-byte limit (at least 1048599 bytes)"),
    );
  });

  it("accept 1000 parameters and refuse the 1001st where it starts", () => {
    const names = Array.from({ length: 1001 }, (_, i) => `p${i}`);
    const ok = `HI ${names
      .slice(0, 1000)
      .map((n) => `${n}=1`)
      .join(";")}`;
    assert.equal(parseMessage(ok).params.size, 1000);
    const over = `${ok};p1000=1`;
    refuses(over, `column ${ok.length + 2}: more than 1000 parameters in one message`);
    const json = `{"command":"HI","parameters":{${names.map((n) => `"${n}":1`).join(",")}}}`;
    assert.throws(() => parseMessage(json), invalid("JSON message has 1001 parameters, more than 1000"));
  });

  it("can be set per call", () => {
    refuses("HI a=1;b=2;c=3", "column 12: more than 2 parameters in one message", { maxParams: 2 });
    refuses("HI a=1", "column 4: more than 0 parameters in one message", { maxParams: 0 });
    refuses("HI a=12345", "message is over the 8-byte limit (at least 10 bytes)", { maxLineBytes: 8 });
    assert.equal(parseMessage("HI a=1", { maxLineBytes: 6, maxParams: 1 }).get("a"), "1");
  });

  it("refuse settings that would disable them", () => {
    assert.throws(
      () => parseMessage("HI", { maxLineBytes: 0 }),
      invalid("maxLineBytes must be a number ≥ 1, got 0"),
    );
    assert.throws(
      () => parseMessage("HI", { maxParams: Number.NaN }),
      invalid("maxParams must be a number ≥ 0, got NaN"),
    );
  });

  it("read hostile shapes at the size limit without failing in other ways", () => {
    const n = MiB - 16;
    refuses(`HI a="${"\\".repeat(n)}`, "column 6: quoted value of parameter a has no closing quote");
    assert.equal(parseMessage(`HI a=${"\\\\".repeat(n / 2)}`).get("a")!.length, n / 2);
    refuses(`HI ${"a;".repeat(n / 2)}`, `column 4: parameter "a" has no '=': the form is name=value`);
    refuses(`HI ${"=".repeat(n)}`, "column 4: empty parameter name");
    refuses(`${"<".repeat(n)}`, "column 1: sent-from prefix has no ':': the prefix is <server:service");
    refuses(
      `A${" ".repeat(n)}b`,
      `column 3: parameter name "${" ".repeat(40)}…" has " " at position 1: only ASCII letters, digits and _ are allowed`,
    );
    assert.equal(parseMessage(`HI ${"a=;".repeat(1)}${"b".repeat(n)}=1`).params.size, 2);
  });
});

// ---------------------------------------------------------------------------------------
// Building messages

describe("Message", () => {
  it("keeps parameters sorted, from a record, a map or pairs", () => {
    const fromRecord = new Message({ command: "HI", params: { b: "2", a: 1, c: true, d: 10n } });
    assert.deepEqual(
      [...fromRecord.params],
      [
        ["a", "1"],
        ["b", "2"],
        ["c", "true"],
        ["d", "10"],
      ],
    );
    const fromMap = new Message({
      command: "HI",
      params: new Map<string, string>([
        ["b", "2"],
        ["a", "1"],
      ]),
    });
    const fromPairs = new Message({
      command: "HI",
      params: [
        ["b", "2"],
        ["a", "1"],
      ],
    });
    assert.equal(formatMessage(fromMap), "HI a=1;b=2");
    assert.ok(fromMap.equals(fromPairs));
  });

  it("writes numbers with all their digits and leaves undefined parameters out", () => {
    const m = new Message({
      command: "HI",
      params: { big: 1e21, neg: -0, half: 0.5, gone: undefined, f: false },
    });
    assert.equal(formatMessage(m), "HI big=1000000000000000000000;f=false;half=0.5;neg=0");
  });

  it("refuses bad fields with a precise reason", () => {
    const CASES: [MessageInit, string][] = [
      [{ command: "" }, "command cannot be empty"],
      [{ command: "hi" }, 'command "hi" must be uppercase: HI'],
      [
        { command: "HI", server: "srv" },
        'server "srv" needs a service: a message is addressed as server:service/COMMAND',
      ],
      [
        { command: "HI", service: "a b" },
        'service "a b" has " " at position 2: only ASCII letters, digits and _ (or exactly ".", "*" or "?") are allowed',
      ],
      [
        { command: "HI", sentFromServer: "." },
        'sent-from server "." has "." at position 1: only ASCII letters, digits and _ are allowed',
      ],
      [
        { command: "HI", params: { "a-b": "1" } },
        'parameter name "a-b" has "-" at position 2: only ASCII letters, digits and _ are allowed',
      ],
      [{ command: "HI", params: { "": "1" } }, "parameter name cannot be empty"],
      [
        {
          command: "HI",
          params: [
            ["a", "1"],
            ["a", "2"],
          ],
        },
        "parameter a is given twice",
      ],
      [
        { command: "HI", params: { a: "x\u0000y" } },
        "parameter a has a NUL character at position 2; a NUL ends a message",
      ],
      [{ command: "HI", params: { a: Number.NaN } }, "parameter a must be a finite number, got NaN"],
      [
        { command: "HI", params: { a: Number.POSITIVE_INFINITY } },
        "parameter a must be a finite number, got Infinity",
      ],
    ];
    for (const [init, message] of CASES) assert.throws(() => new Message(init), invalid(message), message);
    assert.throws(
      () => new Message({ command: 7 } as unknown as MessageInit),
      invalid("command must be a string, got number"),
    );
    assert.throws(
      () => new Message({ command: "HI", params: { a: {} } } as unknown as MessageInit),
      invalid("parameter a must be a string, number, bigint or boolean, got object"),
    );
  });

  it("checks names as upstream's verify_message_name does", () => {
    assert.equal(checkMessageName("command", "LOCK_ENTERED"), undefined);
    assert.equal(checkMessageName("command", "_X1"), undefined);
    assert.equal(checkMessageName("parameter", "TimeOut"), undefined);
    assert.equal(checkMessageName("service", "*"), undefined);
    assert.equal(checkMessageName("server", "?"), undefined);
    assert.equal(
      checkMessageName("parameter", "?"),
      'parameter name "?" has "?" at position 1: only ASCII letters, digits and _ are allowed',
    );
    assert.equal(checkMessageName("command", "9"), 'command "9" cannot start with a digit');
    assert.equal(checkMessageName("service", ""), "service cannot be empty");
  });

  it("replies to where a message came from", () => {
    const forwarded = parseMessage("<host:ed_signal cluckd/LOCK pid=1");
    assert.equal(
      formatMessage(forwarded.reply("LOCKED", { pid: forwarded.get("pid") })),
      "host:ed_signal/LOCKED pid=1",
    );
    assert.equal(formatMessage(parseMessage("<:ed_signal LOCK").reply("LOCKED")), "ed_signal/LOCKED");
    // A server alone cannot be addressed; upstream drops it when writing the line.
    assert.equal(formatMessage(parseMessage("<host: LOCK").reply("LOCKED")), "LOCKED");
    assert.equal(formatMessage(parseMessage("DAD").reply("CLIMB")), "CLIMB");
    assert.throws(
      () => parseMessage("DAD").reply("climb"),
      invalid('command "climb" must be uppercase: CLIMB'),
    );
  });

  it("copies with changes", () => {
    const m = parseMessage("svc/HI a=1");
    assert.equal(formatMessage(m.with({ sentFromServer: "me", sentFromService: "x" })), "<me:x svc/HI a=1");
    assert.equal(formatMessage(m.with({ params: { b: 2 } })), "svc/HI b=2");
    assert.equal(formatMessage(m), "svc/HI a=1");
  });

  it("reads typed parameters", () => {
    const m = parseMessage("READY n=-42;big=9007199254740993;t=1.5;a=[::1]:4040;bad=x;e=");
    assert.equal(m.getInteger("n"), -42);
    assert.deepEqual(m.getTimespec("t"), { sec: 1, nsec: 500_000_000 });
    assert.deepEqual(m.getAddress("a"), { family: "ipv6", host: "::1", port: 4040 });
    assert.equal(m.has("e"), true);
    assert.equal(m.get("none"), undefined);
    const FAILS: [() => unknown, string][] = [
      [() => m.getInteger("none"), "parameter none of command READY is missing"],
      [
        () => m.getInteger("bad"),
        'parameter bad of command READY must be an integer (digits with an optional sign), got "x"',
      ],
      [() => m.getInteger("big"), "parameter big of command READY is 9007199254740993, beyond ±(2⁵³−1)"],
      [
        () => m.getTimespec("bad"),
        'parameter bad of command READY must be a timespec (<seconds>[.<nanoseconds>]), got "x"',
      ],
      [
        () => m.getTimespec("big"),
        'parameter big of command READY: timespec "9007199254740993" has more than 2⁵³−1 seconds',
      ],
      [
        () => m.getAddress("e"),
        'parameter e of command READY must be an address such as 10.0.0.1:4040 or [::1]:4040, got "": the host is missing',
      ],
    ];
    for (const [call, message] of FAILS) assert.throws(call, invalid(message), message);
  });
});

// ---------------------------------------------------------------------------------------
// JSON

describe("JSON form", () => {
  it("writes valid JSON when a service is set (upstream forgets a quote and a comma)", () => {
    const m = parseMessage(
      "<me:ed_signal snap:cluckd/LOCK object_name=abc;pid=1234;timeout=1725000000.000000000",
    );
    const json = messageToJson(m);
    assert.equal(
      json,
      '{"sent-from-server":"me","sent-from-service":"ed_signal","server":"snap","service":"cluckd","command":"LOCK",' +
        '"parameters":{"object_name":"abc","pid":1234,"timeout":"1725000000.000000000"}}',
    );
    assert.doesNotThrow(() => JSON.parse(json));
    assert.ok(messageFromJson(json).equals(m));
    assert.ok(parseMessage(json).equals(m));
    assert.equal(messageToJson(parseMessage("HI")), '{"command":"HI"}');
  });

  it("writes as bare JSON only the values every reader turns back into the same text", () => {
    const values: [string, string][] = [
      ["true", "true"],
      ["false", "false"],
      ["17", "17"],
      ["-3", "-3"],
      ["0", "0"],
      ["9007199254740991", "9007199254740991"],
      ["9007199254740993", '"9007199254740993"'],
      ["-0", '"-0"'],
      ["007", '"007"'],
      ["1.5", '"1.5"'],
      ["1e3", '"1e3"'],
      ["+1", '"+1"'],
      ["True", '"True"'],
      ["", '""'],
      ['a"\\\n\u0001', '"a\\"\\\\\\n\\u0001"'],
    ];
    for (const [value, json] of values) {
      const m = new Message({ command: "X", params: { v: value } });
      assert.equal(messageToJson(m), `{"command":"X","parameters":{"v":${json}}}`);
      assert.equal(messageFromJson(messageToJson(m)).get("v"), value);
    }
  });

  it("keeps a parameter named __proto__ as a parameter", () => {
    const m = new Message({ command: "X", params: [["__proto__", "1"]] });
    assert.equal(messageToJson(m), '{"command":"X","parameters":{"__proto__":1}}');
    assert.ok(messageFromJson(messageToJson(m)).equals(m));
    assert.equal(formatMessage(parseMessage("X __proto__=1")), "X __proto__=1");
  });

  it("reads numbers, booleans and null as upstream, without losing digits", () => {
    const m = messageFromJson(
      '{"command":"X","parameters":{"i":17,"n":-2,"f":1.25,"t":0.1,"big":1e21,"y":true,"no":false,"z":null,"s":"a;b"}}',
    );
    assert.deepEqual(Object.fromEntries(m.params), {
      big: "1000000000000000000000",
      f: "1.25",
      i: "17",
      n: "-2",
      no: "false",
      s: "a;b",
      t: "0.1",
      y: "true",
      z: "",
    });
  });

  it("ignores unknown fields, as upstream does", () => {
    const m = messageFromJson('{"command":"X","priority":3,"extra":{"a":[1]},"service":"svc"}');
    assert.equal(formatMessage(m), "svc/X");
  });

  it("is chosen by a leading {, blanks allowed", () => {
    assert.equal(formatMessage(parseMessage('  {"command":"HI","parameters":{"a":"1"}}\r\n')), "HI a=1");
  });

  it("refuses malformed JSON messages with a precise reason", () => {
    const CASES: [string, string][] = [
      ["{", "JSON message is not valid JSON: Expected property name or '}' in JSON at position 1"],
      ["[]", "JSON message must be an object, got an array"],
      ["null", "JSON message must be an object, got null"],
      ['"HI"', "JSON message must be an object, got a string"],
      ["{}", 'JSON message has no "command" field'],
      ['{"command":1}', 'JSON field "command" must be a string, got a number'],
      ['{"command":"HI","service":null}', 'JSON field "service" must be a string, got null'],
      [
        '{"command":"HI","sent-from-server":["a"]}',
        'JSON field "sent-from-server" must be a string, got an array',
      ],
      ['{"command":"HI","parameters":"a=1"}', 'JSON field "parameters" must be an object, got a string'],
      ['{"command":"HI","parameters":[]}', 'JSON field "parameters" must be an object, got an array'],
      [
        '{"command":"HI","parameters":{"a":[1]}}',
        'JSON parameter "a" must be a string, number, true, false or null, got an array',
      ],
      [
        '{"command":"HI","parameters":{"a":{}}}',
        'JSON parameter "a" must be a string, number, true, false or null, got an object',
      ],
      ['{"command":"HI","parameters":{"a":1e400}}', 'JSON parameter "a" is a number too large to hold'],
      ['{"command":"hi"}', 'command "hi" must be uppercase: HI'],
      [
        '{"command":"HI","server":"a"}',
        'server "a" needs a service: a message is addressed as server:service/COMMAND',
      ],
      [
        '{"command":"HI","parameters":{"a b":1}}',
        'parameter name "a b" has " " at position 2: only ASCII letters, digits and _ are allowed',
      ],
      [
        '{"command":"HI","parameters":{"a":"\\u0000"}}',
        "parameter a has a NUL character at position 1; a NUL ends a message",
      ],
    ];
    for (const [text, message] of CASES) {
      assert.throws(() => messageFromJson(text), invalid(message), text);
      if (text.startsWith("{")) assert.throws(() => parseMessage(text), invalid(message), text);
    }
    assert.throws(() => messageFromJson(`${"[".repeat(100_000)}`), MusterError);
  });
});

// ---------------------------------------------------------------------------------------
// Properties

const nameArb = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,11}$/);
const commandArb = fc.stringMatching(/^[A-Z_][A-Z0-9_]{0,11}$/);
const destinationArb = fc.oneof(fc.constant(""), fc.constantFrom(".", "*", "?"), nameArb);
// Values lean on the characters the grammar gives a meaning to.
const valueArb = fc.string({
  unit: fc.oneof(
    fc.constantFrom(";", '"', "\\", "\n", "\r", " ", "\t", "\v", "\f", "=", "<", ":", "/", "n", "r", "{"),
    fc.string({ unit: "binary", minLength: 1, maxLength: 1 }).filter((c) => c !== "\u0000"),
  ),
  maxLength: 24,
});

const messageArb: fc.Arbitrary<Message> = fc
  .record({
    sentFromServer: fc.oneof(fc.constant(""), nameArb),
    sentFromService: fc.oneof(fc.constant(""), nameArb),
    server: destinationArb,
    service: destinationArb,
    command: commandArb,
    params: fc.uniqueArray(fc.tuple(nameArb, valueArb), { selector: ([n]) => n, maxLength: 8 }),
  })
  .map((r) => new Message(r.service === "" ? { ...r, server: "" } : r));

/** A test-side writer with the freedoms the grammar allows: any order, needless quotes, a last ';'. */
function looseLine(
  m: Message,
  order: number[],
  quoteAll: boolean,
  lastSemicolon: boolean,
  pad: string,
): string {
  let line = pad;
  if (m.sentFromServer !== "" || m.sentFromService !== "")
    line += `<${m.sentFromServer}:${m.sentFromService} `;
  else if (pad !== "") line += "<: ";
  if (m.service !== "") line += m.server === "" ? `${m.service}/` : `${m.server}:${m.service}/`;
  line += m.command;
  const entries = [...m.params];
  const sorted =
    entries.length === 0 ? [] : order.map((i) => i % entries.length).filter((i, k, a) => a.indexOf(i) === k);
  for (let i = 0; i < entries.length; i++) if (!sorted.includes(i)) sorted.push(i);
  sorted.forEach((i, k) => {
    const [name, value] = entries[i]!;
    const mustQuote = value.includes(";") || value.startsWith('"') || /[ \t\v\f]$/.test(value);
    const escaped = value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/\r/g, "\\r");
    const written = quoteAll || mustQuote ? `"${escaped.replace(/"/g, '\\"')}"` : escaped;
    line += `${k === 0 ? " " : ";"}${name}=${written}`;
  });
  if (lastSemicolon && entries.length > 0) line += ";";
  return line + pad.split("").reverse().join("");
}

describe("properties", () => {
  it("parse(format(m)) is m", () => {
    fc.assert(
      fc.property(messageArb, (m) => {
        const back = parseMessage(formatMessage(m));
        assert.deepEqual(plain(back), plain(m));
        assert.ok(back.equals(m));
      }),
      { numRuns: 3000 },
    );
  });

  it("format(parse(line)) is the canonical line, whatever freedom the line took", () => {
    fc.assert(
      fc.property(
        messageArb,
        fc.array(fc.nat(16), { maxLength: 8 }),
        fc.boolean(),
        fc.boolean(),
        fc.constantFrom("", " ", "\t", " \r\n"),
        (m, order, quoteAll, lastSemicolon, pad) => {
          const line = looseLine(m, order, quoteAll, lastSemicolon, pad);
          assert.equal(formatMessage(parseMessage(line)), formatMessage(m), JSON.stringify(line));
        },
      ),
      { numRuns: 3000 },
    );
  });

  it("JSON round trips and is always valid JSON", () => {
    fc.assert(
      fc.property(messageArb, (m) => {
        const json = messageToJson(m);
        assert.doesNotThrow(() => JSON.parse(json));
        assert.ok(!json.includes("\n") && !json.includes("\r"));
        assert.deepEqual(plain(messageFromJson(json)), plain(m));
      }),
      { numRuns: 2000 },
    );
  });

  it("any text is either refused with INVALID_ARGUMENT or read into a message that writes back to itself", () => {
    const noise = fc.string({
      unit: fc.oneof(
        fc.constantFrom(
          "<",
          ":",
          "/",
          " ",
          "=",
          ";",
          '"',
          "\\",
          "n",
          "A",
          "B",
          "a",
          "_",
          "1",
          "*",
          ".",
          "{",
          "\t",
          "\r",
        ),
        fc.string({ unit: "binary", minLength: 1, maxLength: 1 }),
      ),
      maxLength: 40,
    });
    const lineArb = fc.oneof(
      noise,
      messageArb.map((m) => formatMessage(m)),
      fc.json(),
    );
    fc.assert(
      fc.property(lineArb, (line) => {
        let m: Message;
        try {
          m = parseMessage(line);
        } catch (err) {
          assert.ok(err instanceof MusterError && err.code === ErrorCode.INVALID_ARGUMENT, String(err));
          assert.ok(!/[\n\r]/.test(err.message), "error messages stay on one line");
          return;
        }
        const again = parseMessage(formatMessage(m));
        assert.ok(again.equals(m), JSON.stringify(line));
        assert.equal(formatMessage(again), formatMessage(m));
      }),
      { numRuns: 5000 },
    );
  });
});

describe("an agent's name where its text name goes", () => {
  it("web-1/ALIVE is refused saying that web_1 is the name to use", () => {
    assert.throws(
      () => parseMessage("web-1/ALIVE"),
      (e: MusterError) =>
        /service "web-1" has "-" at position 4: .*; did you mean web_1\?/.test(e.rawMessage),
    );
    assert.throws(
      () => parseMessage("10.0.0.7/ALIVE"),
      (e: MusterError) => /did you mean _10_0_0_7\?/.test(e.rawMessage),
    );
    assert.throws(
      () => parseMessage("**/HI"),
      (e: MusterError) => !/did you mean/.test(e.rawMessage),
    );
  });
});
