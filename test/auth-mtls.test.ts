// Client certificates as identities, end to end: a server whose listeners trust a CA, agents and
// operators that present certificates instead of tokens.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type AgentEvent, createAgent } from "../src/agent/create-agent.js";
import { generateKey } from "../src/auth/keys.js";
import { issueToken } from "../src/auth/tokens.js";
import { ErrorCode } from "../src/errors/codes.js";
import type { MusterError } from "../src/errors/muster-error.js";
import { connectOperator } from "../src/operator/create-operator.js";
import { createServer, type MusterServer } from "../src/server/create-server.js";
import { hasOpenssl, makeCertificates, type Pem } from "./support/certs.js";
import { quickReconnect } from "./support/fleet.js";

const skip = hasOpenssl ? false : "openssl is not installed: no certificates to authenticate with";

describe("client certificates as identities (mutual TLS)", { skip }, () => {
  let dir: string;
  let certs: ReturnType<typeof makeCertificates>;
  let server: MusterServer;
  const key = generateKey();
  const urls: Record<"tls" | "wss", string> = { tls: "", wss: "" };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "muster-mtls-"));
    certs = makeCertificates(dir, { ann: "/CN=ann/OU=operator", other: "/CN=web-9/OU=agent" });
    server = createServer({
      listen: ["tls://127.0.0.1:0", "wss://127.0.0.1:0"],
      tls: { cert: certs.server.cert, key: certs.server.key, ca: certs.ca.cert },
      auth: { key, certificates: true },
    });
    await server.start();
    for (const l of server.listeners) urls[l.kind as "tls" | "wss"] = l.url;
  });
  after(async () => {
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** The first connect or refusal of an agent presenting `pem`. */
  async function first(url: string, name: string, pem: Pem | undefined, token?: string): Promise<AgentEvent> {
    const agent = createAgent({
      name,
      servers: [url],
      reconnect: quickReconnect,
      tls: { ca: certs.ca.cert, ...(pem ? { cert: pem.cert, key: pem.key } : {}) },
      ...(token !== undefined ? { token } : {}),
    });
    const e = await new Promise<AgentEvent>((resolve) => {
      agent.onEvent((ev) => {
        if (ev.type === "connected" || ev.type === "retry") resolve(ev);
      });
      agent.start();
    });
    if (e.type === "connected") assert.equal(await server.callAgent(name, "sys.ping").then(() => "ok"), "ok");
    await agent.close();
    return e;
  }

  for (const kind of ["tls", "wss"] as const) {
    it(`over ${kind}://: the certificate's CN is the agent's name, and a token is not needed`, async () => {
      assert.equal((await first(urls[kind], "web-1", certs.client)).type, "connected");
    });
  }

  it("refuses a certificate from another CA, one for another name, and no credential at all", async () => {
    const foreign = await first(urls.tls, "intruder", certs.foreign);
    assert.match(
      (foreign as { error: string }).error,
      /\(unauthenticated\): client certificate not trusted: DEPTH_ZERO_SELF_SIGNED_CERT/,
    );
    const misnamed = await first(urls.tls, "web-1", certs.extra.other);
    assert.match(
      (misnamed as { error: string }).error,
      /\(rejected\): the certificate is for agent web-9, not web-1/,
    );
    const none = await first(urls.tls, "web-1", undefined);
    assert.match(
      (none as { error: string }).error,
      /no credential: present a token .* or a client certificate/,
    );
  });

  it("a token takes precedence over the certificate", async () => {
    const token = await issueToken(key, { role: "agent", subject: "web-5" });
    assert.equal((await first(urls.tls, "web-5", certs.client, token)).type, "connected");
  });

  it("OU operator makes an operator; its certificate cannot open an agent session", async () => {
    const op = await connectOperator({
      server: urls.wss,
      tls: { ca: certs.ca.cert, cert: certs.extra.ann!.cert, key: certs.extra.ann!.key },
    });
    try {
      assert.ok(Array.isArray(await op.agents()));
      await assert.rejects(op.enrol("accept", "x"), (e: MusterError) => {
        assert.equal(e.code, ErrorCode.PERMISSION_DENIED);
        assert.match(e.message, /needs the admin role; ann has operator/);
        return true;
      });
    } finally {
      await op.close();
    }
    const asAgent = await first(urls.tls, "ann", certs.extra.ann);
    assert.match(
      (asAgent as { error: string }).error,
      /a certificate for role operator cannot open an agent session/,
    );
  });
});
