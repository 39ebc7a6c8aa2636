// The credentials of the authenticated handshake target: fixed keys (so that a saved input
// replays against the same server key in any later run) and a corpus of tokens built from
// them, valid and broken in every way a peer could send: expired, forged, signed with the other
// algorithm, unsigned, tampered, with bad claims, enrolment tokens up to the size limit.

import { createPrivateKey } from "node:crypto";
import { SignJWT } from "jose";
import { type AuthKey, HMAC_PREFIX, keyMaterial, parseKey } from "../src/auth/keys.js";
import { type IssueOptions, issueToken } from "../src/auth/tokens.js";

/** An Ed25519 key from a fixed 32-byte seed (PKCS#8: a fixed prefix, then the seed). */
function ed25519(seedByte: number): AuthKey {
  const der = Buffer.concat([
    Buffer.from("302e020100300506032b657004220420", "hex"),
    Buffer.alloc(32, seedByte),
  ]);
  const pem = createPrivateKey({ key: der, format: "der", type: "pkcs8" })
    .export({ type: "pkcs8", format: "pem" })
    .toString();
  return parseKey(pem, `fuzz key ${seedByte}`);
}

/** The key of the fuzzed server. */
export const SERVER_KEY = ed25519(0x5e);
/** Another Ed25519 key: its tokens are forged, as far as the server is concerned. */
const OTHER_KEY = ed25519(0x07);
/** An HMAC key: its tokens use the algorithm the server does not. */
const HMAC_KEY = parseKey(`${HMAC_PREFIX}${Buffer.alloc(32, 0x68).toString("base64url")}`, "fuzz hmac");

/** Every token is issued at this time, with a fixed id: the corpus is the same in every run. */
const EPOCH = Date.UTC(2026, 0, 1);

/** Agent names with a valid token each, and the labels the token binds. */
export const AGENTS: ReadonlyArray<{ name: string; labels: Record<string, string> }> = [
  { name: "fz-agent-0", labels: {} },
  { name: "fz-agent-1", labels: { zone: "eu" } },
];

/** The control agent's name: no token of the corpus is for it. */
export const CONTROL = "fuzz-control-auth-7f3e";

export interface Credentials {
  /** Tokens the server accepts: agent tokens (for AGENTS), operator and admin tokens. */
  valid: string[];
  /** Enrolment tokens (valid), from small to as large as a token may be. */
  enrol: string[];
  /** Tokens the server refuses, each for its own reason. */
  invalid: string[];
  /** The control agent's token. */
  control: string;
}

/** An enrolment token for any name with 14 labels, as long as a token may be. */
async function largestEnrol(issue: (o: IssueOptions) => Promise<string>): Promise<string> {
  let best = "";
  for (let lo = 1, hi = 256; lo <= hi; ) {
    const mid = (lo + hi) >> 1;
    const labels: Record<string, string> = {};
    for (let i = 0; i < 14; i++) labels[`label-${i}`] = "v".repeat(mid);
    try {
      best = await issue({ role: "enrol", subject: "*", labels });
      lo = mid + 1;
    } catch {
      hi = mid - 1;
    }
  }
  return best;
}

const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString("base64url");

let cached: Promise<Credentials> | undefined;

/** The corpus (built once per process). */
export function credentials(): Promise<Credentials> {
  cached ??= build();
  return cached;
}

async function build(): Promise<Credentials> {
  let n = 0;
  const issue = (o: IssueOptions, key = SERVER_KEY): Promise<string> =>
    issueToken(key, { now: EPOCH, id: `fuzzToken${n++}`, ...o });
  const valid = [
    ...(await Promise.all(AGENTS.map((a) => issue({ role: "agent", subject: a.name, labels: a.labels })))),
    await issue({ role: "agent", subject: AGENTS[0]!.name, methods: ["report.*"] }),
    await issue({ role: "operator", subject: "fuzz operator" }),
    await issue({ role: "admin", subject: "fuzz-admin" }),
  ];
  const enrol = [
    await issue({ role: "enrol", subject: "fz-*" }),
    await issue({ role: "enrol", subject: "fz-?" }),
    await issue({ role: "enrol", subject: "fz-*", labels: { zone: "eu" }, methods: ["report.*"] }),
    // Near the limit: the token of an agent enrolled with it may not fit (refused when asked).
    await largestEnrol(issue),
  ];
  const [header, payload] = valid[0]!.split(".");
  const otherSignature = valid[1]!.split(".")[2]!;
  const signWith = keyMaterial(SERVER_KEY).signWith!;
  const raw = (payloadClaims: Record<string, unknown>): Promise<string> =>
    new SignJWT(payloadClaims).setProtectedHeader({ alg: "EdDSA", typ: "JWT" }).sign(signWith);
  const claims = { iss: "muster", sub: AGENTS[0]!.name, jti: "fuzzRaw", iat: EPOCH / 1000, role: "agent" };
  const invalid = [
    await issue({ role: "agent", subject: AGENTS[0]!.name, ttlMs: 1000 }), // expired
    await issue({ role: "agent", subject: AGENTS[0]!.name }, OTHER_KEY), // forged
    await issue({ role: "agent", subject: AGENTS[0]!.name }, HMAC_KEY), // the other algorithm
    await issue({ role: "enrol", subject: "fz-*" }, HMAC_KEY),
    `${b64({ alg: "none", typ: "JWT" })}.${payload}.`, // unsigned
    `${b64({ alg: "NoNe" })}.${payload}.${otherSignature}`,
    `${header}.${payload}.${otherSignature}`, // another token's signature
    `${header}.${b64({ ...claims, role: "root" })}.${valid[0]!.split(".")[2]}`, // tampered payload
    await raw({ ...claims, iss: "someone" }),
    await raw({ ...claims, role: "superuser" }),
    await raw({ ...claims, labels: { "bad key!": "x" } }),
    await raw({ ...claims, sub: "no spaces allowed" }),
    await raw({ ...claims, nbf: EPOCH / 1000 + 10 * 365 * 86_400 }), // not yet valid
    await raw({ ...claims, iat: "yesterday" }),
    "a.b.c",
    "x".repeat(4096), // as long as allowed, not a token
    `${header}.${"A".repeat(4096 - header!.length - 2)}.`,
  ];
  const control = await issue({ role: "agent", subject: CONTROL });
  return { valid, enrol, invalid, control };
}
