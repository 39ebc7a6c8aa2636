import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { it } from "node:test";
import { promisify } from "node:util";
import { generateKeyFile } from "../src/auth/keys.js";
import { freePort } from "./support/cli.js";

const run = promisify(execFile);

it("the README's library example runs as written (on a free port)", async () => {
  const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
  const block = /```ts\n([\s\S]*?)```/.exec(readme);
  assert.ok(block, "README has a ts example");
  const port = await freePort();
  // It closes what it made: the program exits by itself.
  const code = block[1]!.replaceAll("33075", String(port));
  // Written inside the package so that `import … from "muster"` resolves to this package.
  const file = new URL("./readme-snippet.mjs", import.meta.url);
  writeFileSync(file, code);
  const { stdout } = await run(process.execPath, [file.pathname], { timeout: 20_000 });
  assert.match(stdout, /^web-1 ok \{ deployed: '1\.2\.3' \}$/m);
  assert.match(stdout, /\{ ok: 1, error: 0, timeout: 0, notConnected: 0 \}/);
});

it("docs/streams.md's examples run as written: serve on an agent, read from the server", async () => {
  const doc = readFileSync(new URL("../../docs/streams.md", import.meta.url), "utf8");
  const blocks = [...doc.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
  assert.equal(blocks.length, 2, "a serving and a reading example");
  const port = await freePort();
  const code = [
    'import { createAgent, createServer } from "muster";',
    `const server = createServer({ listen: ["tcp://127.0.0.1:${port}"], standalone: true });`,
    "await server.start();",
    `const agent = createAgent({ name: "web-1", servers: ["tcp://127.0.0.1:${port}"] });`,
    blocks[0]!,
    "agent.start();",
    "await agent.connected();",
    blocks[1]!,
  ].join("\n");
  const file = new URL("./streams-snippet.mjs", import.meta.url);
  writeFileSync(file, code);
  const { stdout } = await run(process.execPath, [file.pathname], { timeout: 20_000 });
  assert.equal(stdout, "100\n101\n102\n3\n");
});

it("docs/numbers.md's library example runs as written", async () => {
  const doc = readFileSync(new URL("../../docs/numbers.md", import.meta.url), "utf8");
  const block = /### As a library\n+```js\n([\s\S]*?)```/.exec(doc);
  assert.ok(block, "docs/numbers.md has a library example");
  const dir = mkdtempSync(join(tmpdir(), "numbers-doc-"));
  try {
    const code = block[1]!.replaceAll('"./state"', JSON.stringify(dir));
    const file = new URL("./numbers-snippet.mjs", import.meta.url);
    writeFileSync(file, code);
    const { stdout } = await run(process.execPath, [file.pathname], { timeout: 30_000 });
    assert.match(stdout, /^true \d+ 20 0\n$/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

it("docs/text.md's library examples run as written: routing to an agent, a permanent client", async () => {
  const doc = readFileSync(new URL("../../docs/text.md", import.meta.url), "utf8");
  const blocks = [...doc.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
  assert.equal(blocks.length, 2, "a server-and-agent example and a client example");
  const [port, text, udp] = [await freePort(), await freePort(), await freePort()];
  const first = blocks[0]!
    .replaceAll("33076", String(port))
    .replaceAll("3001", String(text))
    .replaceAll("3003", String(udp));
  const second = blocks[1]!
    .replace(/^import .*$/m, "")
    .replace(
      '["tcp://10.0.0.1:3001", "tcp://10.0.0.2:3001"]',
      `["tcp://127.0.0.1:${port + 1}", "tcp://127.0.0.1:${text}"]`,
    )
    .replace('pause: "1s,5s,30s"', 'pause: "20ms"');
  const code = [
    'import { createTextClient, TextService } from "muster/text";',
    'import { connect } from "node:net";',
    first,
    "await agent.connected();",
    // Two lines from a plain socket: one for the server's own DEPLOY, one for the agent.
    `const s = connect(${text}, "127.0.0.1");`,
    "let got = '';",
    "s.on('data', (d) => { got += d; });",
    "s.end('DEPLOY version=2\\nweb_1/HI\\n');",
    "await new Promise((r) => s.on('close', r));",
    "process.stdout.write(got);",
    // The permanent client: what it sends arrives at the server's text service.
    "const seen = [];",
    "server.text.on('REGISTER', (m) => { seen.push(m.toString()); });",
    "server.text.on('STATUS', (m) => { seen.push(m.toString()); });",
    second,
    "while (seen.length < 2) await new Promise((r) => setTimeout(r, 10));",
    "process.stdout.write(seen.join('\\n') + '\\n');",
    "await client.close();",
    "await Promise.all(endpoints.map((e) => e.close()));",
    "await agent.close();",
    "await server.close();",
  ].join("\n");
  const file = new URL("./text-snippet.mjs", import.meta.url);
  writeFileSync(file, code);
  const { stdout } = await run(process.execPath, [file.pathname], { timeout: 20_000 });
  const lines = stdout.trimEnd().split("\n");
  assert.equal(lines[0], "DEPLOYING version=2");
  assert.match(lines[1]!, /^<[A-Za-z_]\w*:web_1 DAD$/);
  assert.deepEqual(lines.slice(2).sort(), ["REGISTER service=web;version=1", "STATUS load=0.3"]);
});

it("docs/auth.md's library example runs as written (/etc/muster/ being a temporary directory)", async () => {
  const doc = readFileSync(new URL("../../docs/auth.md", import.meta.url), "utf8");
  const block = /### In the library\n+```ts\n([\s\S]*?)```/.exec(doc);
  assert.ok(block, "docs/auth.md has a library example");
  const dir = mkdtempSync(join(tmpdir(), "auth-doc-"));
  try {
    generateKeyFile(join(dir, "auth.key"));
    const port = await freePort();
    const code = [
      block[1]!
        .replaceAll("/etc/muster/", `${dir}/`)
        .replace("tcp://0.0.0.0:33076", `tcp://127.0.0.1:${port}`)
        .replace(
          "await server.close();",
          'process.stdout.write(server.listeners[0].url + " " + revocations.size + "\\n");\nawait server.close();',
        ),
    ].join("\n");
    const file = new URL("./auth-snippet.mjs", import.meta.url);
    writeFileSync(file, code);
    const { stdout } = await run(process.execPath, [file.pathname], { timeout: 20_000 });
    assert.equal(stdout, `tcp://127.0.0.1:${port} 0\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

it("docs/library.md's example runs as written and prints what the document says", async () => {
  const doc = readFileSync(new URL("../../docs/library.md", import.meta.url), "utf8");
  const block = /## A fleet in one program\n+```ts\n([\s\S]*?)```/.exec(doc);
  const printed = /It prints:\n+```text\n([\s\S]*?)```/.exec(doc);
  assert.ok(block && printed, "docs/library.md has the example and its output");
  const port = await freePort();
  const file = new URL("./library-snippet.mjs", import.meta.url);
  writeFileSync(file, block[1]!.replaceAll("33076", String(port)));
  // It exits by itself: everything it opened, it closes.
  const { stdout } = await run(process.execPath, [file.pathname], { timeout: 20_000 });
  const sorted = (text: string) => {
    const lines = text.trimEnd().split("\n");
    return [lines[0], ...lines.slice(1, 3).sort(), ...lines.slice(3)];
  };
  assert.deepEqual(sorted(stdout), sorted(printed[1]!));
});
