import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { Command, Option } from "commander";
import {
  applyConfigFile,
  ConfigError,
  type ConfigValue,
  MAX_CONFIG_BYTES,
  parseConfig,
  readConfigText,
} from "./config-file.js";
import { collectList, parseCount, parseDuration, parseLabel, parseServerUrl } from "./parse.js";

const dir = mkdtempSync(join(tmpdir(), "muster-config-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A command with one option of each kind a config file fills. */
function command(): Command {
  return new Command("x")
    .exitOverride()
    .option("--listen <url>", "repeatable", collectList)
    .option("--label <key=value>", "labels", parseLabel, {})
    .option("--heartbeat <duration>", "a duration", parseDuration, 5000)
    .option("--max-connections <n>", "a count", parseCount, 100)
    .option("--name <name>", "a string")
    .option("--standalone", "a flag", false)
    .addOption(new Option("--order <order>", "a choice").choices(["shuffle", "ordered"]).default("shuffle"))
    .addOption(new Option("--token <token>", "from the environment too").env("CONFIG_TEST_TOKEN"))
    .addOption(new Option("--config <file>", "the file"))
    .option("--check-config", "check", false);
}

function parse(text: string, checks = {}): Map<string, ConfigValue> {
  return parseConfig(text, "m.yaml", command().options, checks);
}

function values(text: string): Record<string, unknown> {
  return Object.fromEntries([...parse(text)].map(([k, v]) => [k, v.value]));
}

/** The ConfigError `text` is refused with. */
function refusal(text: string, checks = {}): ConfigError {
  try {
    parse(text, checks);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err;
  }
  assert.fail(`accepted: ${text}`);
}

describe("parseConfig", () => {
  it("reads every kind of option with the option's own parser", () => {
    assert.deepEqual(
      values(
        [
          "# comment",
          "listen: [ws://0.0.0.0:33075, tcp://0.0.0.0:33076]",
          "label: {role: web, zone: eu}",
          "heartbeat: 5s",
          "max-connections: 60000",
          "name: web-1",
          "standalone: true",
          "order: ordered",
        ].join("\n"),
      ),
      {
        listen: ["ws://0.0.0.0:33075", "tcp://0.0.0.0:33076"],
        label: { role: "web", zone: "eu" },
        heartbeat: 5000,
        maxConnections: 60000,
        name: "web-1",
        standalone: true,
        order: "ordered",
      },
    );
  });

  it("takes what the flag takes: one value, comma-separated lists, labels as key=value", () => {
    assert.deepEqual(values("listen: ws://a:1,tcp://b:2"), { listen: ["ws://a:1", "tcp://b:2"] });
    assert.deepEqual(values("listen:\n  - ws://a:1\n  - tcp://b:2,tls://c:3"), {
      listen: ["ws://a:1", "tcp://b:2", "tls://c:3"],
    });
    assert.deepEqual(values("label: [role=web, zone=eu]"), { label: { role: "web", zone: "eu" } });
    assert.deepEqual(values("label: role=web"), { label: { role: "web" } });
    assert.deepEqual(values("label: {gpu: }"), { label: { gpu: "" } });
    // A scalar is read as written: a number such as 1.0 is not turned into 1 first.
    assert.deepEqual(values('name: "007"\nheartbeat: 1.5s'), { name: "007", heartbeat: 1500 });
  });

  it("an empty file, or one of comments only, sets nothing", () => {
    assert.equal(parse("").size, 0);
    assert.equal(parse("# nothing here\n\n").size, 0);
  });

  it("gives each value's line", () => {
    const m = parse("\n\nheartbeat: 5s\nlisten:\n  - ws://a:1\n");
    assert.equal(m.get("heartbeat")?.line, 3);
    assert.equal(m.get("listen")?.line, 5);
  });

  it("refuses an unknown key with its line and the nearest flag name", () => {
    const e = refusal("name: a\nhearbeat: 5s\n");
    assert.equal(e.line, 2);
    assert.equal(e.message, 'm.yaml:2: unknown key "hearbeat"; did you mean "heartbeat"?');
    assert.match(refusal("maxConnections: 5").message, /did you mean "max-connections"\?/);
    assert.match(refusal("max_connections: 5").message, /did you mean "max-connections"\?/);
    const far = refusal("colour: blue");
    assert.doesNotMatch(far.message, /did you mean/);
    assert.match(far.message, /^m\.yaml:1: unknown key "colour": the keys are the command's long flag names/);
  });

  it("refuses keys that belong on the command line only", () => {
    assert.match(refusal("config: other.yaml").message, /^m\.yaml:1: config goes on the command line only/);
    assert.match(
      refusal("check-config: true").message,
      /^m\.yaml:1: check-config goes on the command line only/,
    );
  });

  it("refuses a value the option's parser refuses, with the parser's message", () => {
    const e = refusal("name: a\nheartbeat: 5 seconds\n");
    assert.equal(e.line, 2);
    assert.equal(
      e.message,
      'm.yaml:2: heartbeat: "5 seconds" is not a duration: use a number and a unit, e.g. 500ms, 3s, 2m, 1h',
    );
    assert.match(refusal("max-connections: -1").message, /max-connections: "-1" is not a whole number/);
    assert.match(refusal("order: random").message, /order: Allowed choices are shuffle, ordered/);
    assert.match(refusal("label: {'bad key': x}").message, /label: label key "bad key" is invalid/);
  });

  it("refuses values of the wrong shape, with their line", () => {
    assert.equal(refusal("heartbeat: [1s, 2s]").message, "m.yaml:1: heartbeat: give one value, not a list");
    assert.equal(refusal("name: {a: b}").message, "m.yaml:1: name: give one value, not a mapping");
    assert.equal(
      refusal("listen:\n  a: b").message,
      "m.yaml:2: listen: give a value or a list of values, not a mapping",
    );
    assert.equal(
      refusal("listen:\n  - ws://a:1\n  - [x]").message,
      "m.yaml:3: listen: each item must be one value, not a list",
    );
    assert.equal(
      refusal('standalone: "yes"').message,
      'm.yaml:1: standalone: "yes" is not true or false (it is a flag: true sets it)',
    );
    assert.equal(refusal("standalone: 1").line, 1);
    assert.equal(refusal("name:").message, "m.yaml:1: name: no value: give one, or leave the key out");
    assert.equal(
      refusal("label: {role: [a]}").message,
      "m.yaml:1: label: each label is key: value, e.g. role: web",
    );
  });

  it("refuses a file that is not a mapping", () => {
    assert.match(refusal("- a\n- b").message, /^m\.yaml:1: the config file must be a mapping of flag names/);
    assert.match(refusal("just text").message, /must be a mapping/);
    assert.match(refusal("[1, 2]: x").message, /^m\.yaml:1: a key must be a flag name/);
  });

  it("refuses YAML that does not parse, with the parser's line and message", () => {
    const e = refusal("name: a\nlisten: [ws://a:1\nheartbeat: 5s\n");
    assert.match(e.message, /^m\.yaml:\d+: not valid YAML: /);
    assert.ok(e.line !== undefined && e.line >= 2, e.message);
    const twice = refusal("name: a\nname: b\n");
    assert.equal(twice.message, "m.yaml:2: not valid YAML: Map keys must be unique");
    assert.match(refusal("name: 'a\n").message, /^m\.yaml:\d: not valid YAML: Missing closing 'quote/);
  });

  it("checks each item of a list with the checks given, with its line", () => {
    const checks = { listen: parseServerUrl };
    assert.deepEqual(
      [...parse("listen: [ws://a:1, b:2]", checks)].map(([, v]) => v.value),
      [["ws://a:1", "b:2"]],
    );
    const e = refusal("listen:\n  - ws://a:1\n  - ftp://b:2\n", checks);
    assert.equal(e.line, 3);
    assert.match(e.message, /^m\.yaml:3: listen: ftp:\/\/ is not a scheme the command line dials/);
  });

  it("follows aliases to their value", () => {
    assert.deepEqual(values("name: &n web-1\nlabel: {host: *n}"), {
      name: "web-1",
      label: { host: "web-1" },
    });
  });
});

describe("readConfigText", () => {
  it("reads a file", () => {
    const file = join(dir, "ok.yaml");
    writeFileSync(file, "heartbeat: 5s\n");
    assert.equal(readConfigText(file), "heartbeat: 5s\n");
  });

  it("refuses a missing file, a directory, a file over the bound and one that is not UTF-8", () => {
    assert.throws(() => readConfigText(join(dir, "missing.yaml")), {
      message: `${join(dir, "missing.yaml")}: cannot read the config file: ENOENT (no such file)`,
    });
    assert.throws(() => readConfigText(dir), { message: /cannot read the config file: EISDIR/ });
    const big = join(dir, "big.yaml");
    writeFileSync(big, `# ${"x".repeat(MAX_CONFIG_BYTES)}\n`);
    assert.throws(() => readConfigText(big), {
      message: `${big}: the config file is larger than the 1 MiB allowed`,
    });
    const small = join(dir, "small.yaml");
    writeFileSync(small, "name: abcdef\n");
    assert.throws(() => readConfigText(small, 8), { message: /larger than the 8 bytes allowed/ });
    assert.equal(readConfigText(small, 13), "name: abcdef\n");
    const latin1 = join(dir, "latin1.yaml");
    writeFileSync(latin1, Buffer.from([0x6e, 0x61, 0x6d, 0x65, 0x3a, 0x20, 0xe9, 0x0a]));
    assert.throws(() => readConfigText(latin1), { message: /is not UTF-8 text/ });
  });

  it("reads no more than the bound from a device that never ends", {
    skip: process.platform === "win32",
  }, () => {
    assert.throws(() => readConfigText("/dev/zero"), { message: /larger than the 1 MiB allowed/ });
  });
});

describe("applyConfigFile", () => {
  const file = join(dir, "apply.yaml");
  writeFileSync(file, "heartbeat: 3s\nname: from-file\ntoken: from-file\nlisten: [ws://a:1]\n");

  /** Parses `args` and applies the file as the command's hook does; returns values and sources. */
  function run(
    args: string[],
    env: Record<string, string> = {},
  ): Record<string, [unknown, string | undefined]> {
    const saved = process.env.CONFIG_TEST_TOKEN;
    if (env.CONFIG_TEST_TOKEN !== undefined) process.env.CONFIG_TEST_TOKEN = env.CONFIG_TEST_TOKEN;
    else delete process.env.CONFIG_TEST_TOKEN;
    try {
      const cmd = command();
      cmd.parse(args, { from: "user" });
      assert.equal(applyConfigFile(cmd), cmd.getOptionValue("config"));
      const out: Record<string, [unknown, string | undefined]> = {};
      for (const k of ["heartbeat", "name", "token", "listen", "maxConnections"])
        out[k] = [cmd.getOptionValue(k), cmd.getOptionValueSource(k)];
      return out;
    } finally {
      if (saved === undefined) delete process.env.CONFIG_TEST_TOKEN;
      else process.env.CONFIG_TEST_TOKEN = saved;
    }
  }

  it("flag > environment variable > file > default", () => {
    const r = run(["--config", file, "--name", "from-flag"], { CONFIG_TEST_TOKEN: "from-env" });
    assert.deepEqual(r.name, ["from-flag", "cli"]);
    assert.deepEqual(r.token, ["from-env", "env"]);
    assert.deepEqual(r.heartbeat, [3000, "config"]);
    assert.deepEqual(r.listen, [["ws://a:1"], "config"]);
    assert.deepEqual(r.maxConnections, [100, "default"]);
    assert.deepEqual(run(["--config", file]).token, ["from-file", "config"]);
  });

  it("a flag replaces the file's list: it does not add to it", () => {
    assert.deepEqual(run(["--config", file, "--listen", "tcp://b:2"]).listen, [["tcp://b:2"], "cli"]);
  });

  it("without --config nothing is read", () => {
    assert.deepEqual(run([]).heartbeat, [5000, "default"]);
  });
});
