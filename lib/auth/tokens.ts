import { newId } from "../store/ids.ts";
import { type Role, ROLES, type TokenFailureReason } from "../../shared/protocol.ts";
import { decodeJwt, decodeProtectedHeader, errors, jwtVerify, SignJWT } from "jose";
import { ISSUER_ALGORITHMS, type IssuerConfig } from "./issuers.ts";
import { KeySource, RemoteKeys, StaticKey } from "./jwks.ts";
import { verifyIssuerToken } from "./issuer_tokens.ts";
import { checkTimes, CLOCK_TOLERANCE_S, failure, failureFromJose, text } from "./token_checks.ts";

/** How the server signs and checks access tokens. */
export interface TokenKey {
  /**
   * The HS256 key made from the UTF-8 bytes of the configured secret,
   * imported once: given raw bytes, jose would import them on every call.
   */
  secret: CryptoKey;
  /** A retired secret whose tokens still verify (`JWT_SECRET_PREVIOUS`). */
  previous?: CryptoKey | null;
  issuer: string;
  audience: string;
  /** Trusted identity providers by `iss`, each with its own keys (CONTRACT 8). */
  issuers?: Map<string, TrustedIssuer>;
}

/** An identity provider's settings and its own key source, never shared. */
export interface TrustedIssuer {
  config: IssuerConfig;
  keys: KeySource;
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
export { CLOCK_TOLERANCE_S };

const encoder = new TextEncoder();

/**
 * A compact JWS: three base64url parts without padding (RFC 7515 §7.1); the
 * signature may be empty (an unsecured token, refused later by its `alg`).
 * Checked before jose because its base64url decoding is lenient: it skips
 * whitespace and accepts `=` padding, so `<token> `, `<token>\n` or a space
 * inside the signature would otherwise verify.
 */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

function hmacKey(secret: string): Promise<CryptoKey> {
  return crypto.subtle.importKey(
    "raw",
    encoder.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign", "verify"],
  );
}

/** Builds the token key from the configured secret text (and issuers, when any). */
export async function tokenKey(
  secret: string,
  issuer: string,
  audience: string,
  options: {
    previous?: string;
    issuers?: IssuerConfig[];
    /** Told when an issuer's JWKS cannot be fetched. */
    onKeyFetchError?: (issuer: string, error: unknown) => void;
  } = {},
): Promise<TokenKey> {
  const issuers = new Map<string, TrustedIssuer>();
  for (const config of options.issuers ?? []) {
    const onError = (error: unknown) => options.onKeyFetchError?.(config.issuer, error);
    issuers.set(config.issuer, { config, keys: await keySource(config, onError) });
  }
  return {
    secret: await hmacKey(secret),
    previous: options.previous ? await hmacKey(options.previous) : null,
    issuer,
    audience,
    issuers,
  };
}

/** A new key source for one issuer: a JWKS cache of its own, or its PEM key. */
export async function keySource(
  config: IssuerConfig,
  onError?: (error: unknown) => void,
): Promise<KeySource> {
  if (config.jwksUrl) return new RemoteKeys(config.jwksUrl, config.algorithms, { onError });
  return await StaticKey.create(config.publicKey!, config.algorithms);
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
  // Routed by the unverified `iss`: it only picks which keys may verify, and
  // each issuer's keys and algorithms are then checked as usual.
  const { iss, alg } = peek(token);
  const trusted = iss === undefined ? undefined : key.issuers?.get(iss);
  if (trusted) return await verifyIssuerToken(trusted, token, options);
  // Anything else is judged as Lookout's own token, as before issuers
  // existed, so jose still decides malformed and unsigned tokens; only an
  // asymmetric token of an unknown issuer is named for its `iss` (CONTRACT 8).
  const result = await verifyOwnToken(key, token, options);
  if (
    !result.ok && result.reason === "alg_not_allowed" && iss !== undefined &&
    iss !== key.issuer && (ISSUER_ALGORITHMS as readonly string[]).includes(alg ?? "")
  ) {
    return failure("invalid_claims");
  }
  return result;
}

/** The unverified `iss` and `alg`, when they decode as strings; never trusted. */
function peek(token: string): { iss?: string; alg?: string } {
  let iss: unknown, alg: unknown;
  try {
    iss = decodeJwt(token).iss;
  } catch {
    // Not decodable: jose names it below.
  }
  try {
    alg = decodeProtectedHeader(token).alg;
  } catch {
    // As above.
  }
  return {
    iss: typeof iss === "string" ? iss : undefined,
    alg: typeof alg === "string" ? alg : undefined,
  };
}

/** Lookout's own HS256 token: the current secret, then the previous one. */
async function verifyOwnToken(
  key: TokenKey,
  token: string,
  options: VerifyOptions,
): Promise<Verification> {
  const now = options.now ?? Date.now();
  let payload: Record<string, unknown>;
  try {
    payload = await verifyHs256(token, key.secret, key, now);
  } catch (error) {
    const badSignature = error instanceof errors.JWSSignatureVerificationFailed;
    if (!badSignature || !key.previous) return failureFromJose(error);
    try {
      payload = await verifyHs256(token, key.previous, key, now);
    } catch (again) {
      return failureFromJose(again);
    }
  }
  const nowS = now / 1000;
  const { sub, exp, iat, role } = payload;
  if (typeof sub !== "string" || sub.length === 0) {
    return failure("invalid_claims", payload);
  }
  const checked = checkTimes(payload, nowS);
  if (checked) return checked;
  if (payload.jti !== undefined && typeof payload.jti !== "string") {
    return failure("invalid_claims", payload);
  }
  const claims: AccessClaims = {
    sub,
    role: role as Role,
    jti: text(payload.jti),
    sid: text(payload.sid),
    iat: iat as number,
    exp: exp as number,
  };
  if (options.isRevoked && await options.isRevoked(claims)) {
    return failure("revoked", payload);
  }
  if (!ROLES.includes(role as Role)) return failure("forbidden", payload);
  return { ok: true, claims };
}

async function verifyHs256(
  token: string,
  secret: CryptoKey,
  key: TokenKey,
  now: number,
): Promise<Record<string, unknown>> {
  const { payload } = await jwtVerify(token, secret, {
    algorithms: ALGORITHMS,
    issuer: key.issuer,
    audience: key.audience,
    requiredClaims: ["sub", "exp", "iat"],
    clockTolerance: CLOCK_TOLERANCE_S,
    currentDate: new Date(now),
  });
  return payload;
}

export { claimAt, mapRole } from "./issuer_tokens.ts";
