import { errors, jwtVerify, SignJWT } from "jose";
import { newId } from "../store/ids.ts";
import { type Role, ROLES, type TokenFailureReason } from "../../shared/protocol.ts";

/** How the server signs and checks access tokens. */
export interface TokenKey {
  /**
   * The HS256 key made from the UTF-8 bytes of the configured secret,
   * imported once: given raw bytes, jose would import them on every call.
   */
  secret: CryptoKey;
  issuer: string;
  audience: string;
}

/** The claims of a verified access token. */
export interface AccessClaims {
  sub: string;
  role: Role;
  jti: string | null;
  /** The session the token was issued under, when it came from a login. */
  sid: string | null;
  iat: number;
  exp: number;
}

/** The outcome of {@linkcode verifyAccessToken}. */
export type Verification =
  | { ok: true; claims: AccessClaims }
  | {
    ok: false;
    reason: TokenFailureReason;
    /** `sub` and `jti`, only when the signature verified. */
    user: string | null;
    tokenId: string | null;
    /** `exp` and `iat` of a token whose signature verified (for diagnosis). */
    exp?: number;
    iat?: number;
  };

/** Options of {@linkcode verifyAccessToken}. */
export interface VerifyOptions {
  /** Says whether the token or its session has been revoked. */
  isRevoked?: (claims: AccessClaims) => boolean | Promise<boolean>;
  /** The current time in epoch ms (tests). */
  now?: number;
}

/** Only HS256: the key is an HMAC secret, so no other algorithm may verify. */
export const ALGORITHMS = ["HS256"];
/** The largest time a JavaScript Date can hold, in seconds. */
const MAX_TIME_S = 8.64e12;
/** Tolerated clock skew for `nbf` and `iat`; `exp` is checked without slack. */
export const CLOCK_TOLERANCE_S = 5;

const encoder = new TextEncoder();

/**
 * A compact JWS: three base64url parts without padding (RFC 7515 §7.1); the
 * signature may be empty (an unsecured token, refused later by its `alg`).
 * Checked before jose because its base64url decoding is lenient: it skips
 * whitespace and accepts `=` padding, so `<token> `, `<token>\n` or a space
 * inside the signature would otherwise verify.
 */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/** Builds the token key from the configured secret text. */
export async function tokenKey(
  secret: string,
  issuer: string,
  audience: string,
): Promise<TokenKey> {
  const key = await crypto.subtle.importKey(
    "raw",
    encoder.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign", "verify"],
  );
  return { secret: key, issuer, audience };
}

/** Signs a new access token. The token is returned once and never stored. */
export async function signAccessToken(
  key: TokenKey,
  options: { sub: string; role: string; ttlS: number; sid?: string },
): Promise<{ token: string; claims: AccessClaims; expiresAt: number }> {
  const iat = Math.floor(Date.now() / 1000);
  const exp = iat + options.ttlS;
  const jti = newId();
  const payload: Record<string, string> = { role: options.role };
  if (options.sid) payload.sid = options.sid;
  const token = await new SignJWT(payload)
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(options.sub)
    .setIssuer(key.issuer)
    .setAudience(key.audience)
    .setIssuedAt(iat)
    .setExpirationTime(exp)
    .setJti(jti)
    .sign(key.secret);
  const claims: AccessClaims = {
    sub: options.sub,
    role: options.role as Role,
    jti,
    sid: options.sid ?? null,
    iat,
    exp,
  };
  return { token, claims, expiresAt: exp * 1000 };
}

function text(value: unknown): string | null {
  return typeof value === "string" ? value : null;
}

function failure(
  reason: TokenFailureReason,
  payload?: Record<string, unknown>,
): Verification {
  return {
    ok: false,
    reason,
    user: text(payload?.sub),
    tokenId: text(payload?.jti),
    exp: typeof payload?.exp === "number" ? payload.exp : undefined,
    iat: typeof payload?.iat === "number" ? payload.iat : undefined,
  };
}

/**
 * Verifies an access token and names the reason when it fails. Reasons come
 * from jose's error codes, never from its messages.
 */
export async function verifyAccessToken(
  key: TokenKey,
  token: unknown,
  options: VerifyOptions = {},
): Promise<Verification> {
  if (typeof token !== "string" || token.length === 0) {
    return failure("missing_token");
  }
  if (!COMPACT_JWS.test(token)) return failure("malformed_token");
  const now = options.now ?? Date.now();
  let payload: Record<string, unknown>;
  try {
    ({ payload } = await jwtVerify(token, key.secret, {
      algorithms: ALGORITHMS,
      issuer: key.issuer,
      audience: key.audience,
      requiredClaims: ["sub", "exp", "iat"],
      clockTolerance: CLOCK_TOLERANCE_S,
      currentDate: new Date(now),
    }));
  } catch (error) {
    return failureFromJose(error);
  }
  const nowS = now / 1000;
  const { sub, exp, iat, role } = payload;
  if (typeof sub !== "string" || sub.length === 0) {
    return failure("invalid_claims", payload);
  }
  // Past what a Date can hold (8.64e12 s), `exp * 1000` is no usable time.
  if (typeof exp === "number" && exp > MAX_TIME_S) return failure("invalid_claims", payload);
  if (typeof exp !== "number" || exp <= nowS) {
    return failure("token_expired", payload);
  }
  if (typeof iat !== "number" || iat > nowS + CLOCK_TOLERANCE_S) {
    return failure("token_not_yet_valid", payload);
  }
  if (payload.jti !== undefined && typeof payload.jti !== "string") {
    return failure("invalid_claims", payload);
  }
  const claims: AccessClaims = {
    sub,
    role: role as Role,
    jti: text(payload.jti),
    sid: text(payload.sid),
    iat,
    exp,
  };
  if (options.isRevoked && await options.isRevoked(claims)) {
    return failure("revoked", payload);
  }
  if (!ROLES.includes(role as Role)) return failure("forbidden", payload);
  return { ok: true, claims };
}

function failureFromJose(error: unknown): Verification {
  if (!(error instanceof errors.JOSEError)) throw error;
  switch (error.code) {
    case errors.JOSEAlgNotAllowed.code:
      return failure("alg_not_allowed");
    case errors.JWSSignatureVerificationFailed.code:
      return failure("invalid_signature");
    case errors.JWTExpired.code:
      return failure("token_expired", (error as errors.JWTExpired).payload);
    case errors.JWTClaimValidationFailed.code: {
      const e = error as errors.JWTClaimValidationFailed;
      const notYet = (e.claim === "nbf" || e.claim === "iat") &&
        e.reason === "check_failed";
      return failure(notYet ? "token_not_yet_valid" : "invalid_claims", e.payload);
    }
    default:
      // ERR_JWS_INVALID, ERR_JWT_INVALID and the rest: not a usable compact JWS.
      return failure("malformed_token");
  }
}
