import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import { silentLogger } from "../internal/logger.js";
import { parseMessage } from "../text/message.js";
import type { TextContext, TextGuardVerdict } from "../text/service.js";
import type { Identity } from "./auth-gate.js";
import { createTextGuard, type TextCredentials, textNeed } from "./text-access.js";

const OPEN = new Set(["ALIVE", "HELP"]);

/** Tokens are their role ("operator", "admin", "narrow": an operator granted sys.* only); anything else is refused. */
function credentials(standalone = false): TextCredentials & { seen: string[] } {
  const seen: string[] = [];
  return {
    standalone,
    seen,
    async checkTextToken(token) {
      seen.push(token);
      if (token === "operator" || token === "admin")
        return { role: token, subject: `${token}-1`, via: "token" } satisfies Identity;
      if (token === "narrow") return { role: "operator", subject: "ann", via: "token", methods: ["sys.*"] };
      throw new MusterError(ErrorCode.UNAUTHENTICATED, "token is malformed: not three base64url parts");
    },
    checkTextCertificate(cert) {
      if (!cert.authorized)
        throw new MusterError(ErrorCode.UNAUTHENTICATED, "client certificate not trusted");
      return { role: "admin", subject: cert.commonName ?? "", via: "certificate" };
    },
    allows: (id, method) => id.methods === undefined || id.methods.some((g) => g === method),
  };
}

function ctx(extra: Partial<TextContext> = {}): TextContext {
  return { transport: "tcp", peer: "10.0.0.1:5", remoteAddress: "10.0.0.1", send() {}, close() {}, ...extra };
}

async function judge(line: string, c: TextContext, creds = credentials()): Promise<TextGuardVerdict> {
  return createTextGuard(creds, { logger: silentLogger })(parseMessage(line), c);
}

const refusal = (v: TextGuardVerdict): string => (v.ok ? "ok" : v.reply.toString());

describe("the server's text guard", () => {
  it("says what each message needs", () => {
    const need = (line: string) => textNeed(parseMessage(line), OPEN);
    assert.deepEqual(need("ALIVE"), { need: "open", routed: false });
    assert.deepEqual(need("muster/HELP"), { need: "open", routed: false });
    assert.deepEqual(need("LOG_ROTATE"), { need: "operator", routed: false });
    assert.deepEqual(need("muster/STOP"), { need: "admin", routed: false });
    assert.deepEqual(need("RESTART"), { need: "admin", routed: false });
    assert.deepEqual(need("*/STOP"), { need: "operator", routed: true });
    assert.deepEqual(need("web_1/ALIVE"), { need: "operator", routed: true });
    assert.deepEqual(need("other:web_1/HI"), { need: "operator", routed: true });
  });

  it("lets ALIVE and HELP through from this machine only", async () => {
    assert.equal(refusal(await judge("ALIVE", ctx({ local: true }))), "ok");
    assert.match(
      refusal(await judge("ALIVE", ctx())),
      /^INVALID code=UNAUTHENTICATED;command=ALIVE;message=ALIVE needs a credential/,
    );
    assert.match(refusal(await judge("web_1/ALIVE", ctx({ local: true }))), /^INVALID code=UNAUTHENTICATED;/);
  });

  it("takes the token out of the message before anything else sees it", async () => {
    const v = await judge("<ops:cli web_1/HI name=x;token=operator", ctx());
    assert.ok(v.ok);
    assert.equal(v.message.toString(), "<ops:cli web_1/HI name=x");
    const refused = await judge("STOP token=garbage", ctx());
    assert.equal(
      refusal(refused),
      "INVALID code=UNAUTHENTICATED;command=STOP;message=token is malformed: not three base64url parts",
    );
    assert.ok(!refusal(refused).includes("garbage"));
  });

  it("an operator routes to agents (within its grants); only an admin stops the server", async () => {
    assert.equal(refusal(await judge("*/STOP token=operator", ctx())), "ok");
    assert.equal(refusal(await judge("LOG_ROTATE token=operator", ctx())), "ok");
    assert.equal(
      refusal(await judge("STOP token=operator", ctx())),
      "INVALID code=PERMISSION_DENIED;command=STOP;message=operator-1 (operator) may not STOP this server: that needs an admin token",
    );
    assert.equal(refusal(await judge("QUITTING token=admin", ctx())), "ok");
    assert.match(
      refusal(await judge("web_1/HI token=narrow", ctx())),
      /^INVALID code=PERMISSION_DENIED;command=HI;message=ann may not send text messages to agents: its token grants sys\.\*, not muster\.text$/,
    );
  });

  it("takes a trusted client certificate, or the UDP secret, as a credential", async () => {
    const cert = {
      authorized: true,
      commonName: "root",
      organizationalUnits: ["admin"],
      fingerprint256: "AA",
      validTo: "",
    };
    assert.equal(refusal(await judge("STOP", ctx({ transport: "tls", certificate: cert }))), "ok");
    assert.match(
      refusal(await judge("STOP", ctx({ transport: "tls", certificate: { ...cert, authorized: false } }))),
      /^INVALID code=UNAUTHENTICATED;command=STOP;message=client certificate not trusted/,
    );
    assert.equal(refusal(await judge("*/STOP", ctx({ transport: "udp", secretVerified: true }))), "ok");
    assert.match(refusal(await judge("STOP", ctx({ transport: "udp" }))), /needs a credential/);
  });

  it("standalone: everything from this machine, nothing from elsewhere, and the token is still taken out", async () => {
    const creds = credentials(true);
    const v = await judge("*/STOP token=whatever", ctx({ local: true }), creds);
    assert.ok(v.ok);
    assert.equal(v.message.toString(), "*/STOP");
    assert.match(
      refusal(await judge("ALIVE", ctx(), creds)),
      /^INVALID code=PERMISSION_DENIED;.*--standalone/,
    );
    assert.deepEqual(creds.seen, []);
  });
});
