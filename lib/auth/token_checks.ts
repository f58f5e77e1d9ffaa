/**
 * The checks every token's verification shares, whoever issued it: the
 * failure it answers (with what may be named of the token), the times jose
 * leaves to us, and jose's error codes as CONTRACT 4.3 reasons.
 */
import { errors } from "jose";
import type { TokenFailureReason } from "../../shared/protocol.ts";
import type { Verification } from "./tokens.ts";

/** The largest time a JavaScript Date can hold, in seconds. */
const MAX_TIME_S = 8.64e12;
/** Tolerated clock skew for `nbf` and `iat`; `exp` is checked without slack. */
export const CLOCK_TOLERANCE_S = 5;

/** The claim as a string, or null. */
export function text(value: unknown): string | null {
  return typeof value === "string" ? value : null;
}

/** A failed verification for `reason`, naming the user and token id the payload gives. */
export function failure(
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

/** The `exp`/`iat` checks jose leaves to us; undefined when they pass. */
export function checkTimes(
  payload: Record<string, unknown>,
  nowS: number,
): Verification | undefined {
  const { exp, iat } = payload;
  // Past what a Date can hold (8.64e12 s), `exp * 1000` is no usable time.
  if (typeof exp === "number" && exp > MAX_TIME_S) return failure("invalid_claims", payload);
  if (typeof exp !== "number" || exp <= nowS) {
    return failure("token_expired", payload);
  }
  if (typeof iat !== "number" || iat > nowS + CLOCK_TOLERANCE_S) {
    return failure("token_not_yet_valid", payload);
  }
  return undefined;
}

/** jose's error as a CONTRACT 4.3 reason; anything else is thrown on. */
export function failureFromJose(error: unknown): Verification {
  if (!(error instanceof errors.JOSEError)) throw error;
  switch (error.code) {
    case errors.JOSEAlgNotAllowed.code:
      return failure("alg_not_allowed");
    case errors.JWSSignatureVerificationFailed.code:
    // No key of the token's issuer has its kid (CONTRACT 8), even after a refetch.
    case errors.JWKSNoMatchingKey.code:
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
