// Tokens: signing keys, issuing and verifying JWTs, a verification cache, revocation and
// rate limiting of failed authentications.

export { AuthFailureLimiter, type AuthFailureLimiterOptions } from "./failures.js";
export {
  type AuthKey,
  defaultKeyPath,
  generateKey,
  generateKeyFile,
  HMAC_MIN_BYTES,
  HMAC_PREFIX,
  type KeyAlgorithm,
  loadKeyFile,
  loadOrCreateKeyFile,
  musterHome,
  parseKey,
} from "./keys.js";
export {
  appendRevocation,
  defaultRevocationsPath,
  parseRevocations,
  RevocationList,
  type RevocationListOptions,
} from "./revocations.js";
export {
  checkTokenId,
  decodeTokenUnverified,
  type IssueOptions,
  issueToken,
  MAX_TOKEN_CHARS,
  TOKEN_ID_PATTERN,
  TOKEN_ISSUER,
  TOKEN_ROLES,
  type TokenClaims,
  type TokenFailureReason,
  type TokenRole,
  verifyToken,
} from "./tokens.js";
export { TokenVerifier, type TokenVerifierOptions } from "./verifier.js";
