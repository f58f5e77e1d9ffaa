/**
 * Tokens from a trusted identity provider (CONTRACT 8): verified with that
 * issuer's keys and algorithms only, the user and role read from its claims.
 */
import { jwtVerify } from "jose";
import type { Role } from "../../shared/protocol.ts";
import type { IssuerConfig } from "./issuers.ts";
import { KeyUnavailableError } from "./jwks.ts";
import { checkTimes, CLOCK_TOLERANCE_S, failure, failureFromJose, text } from "./token_checks.ts";
import type { AccessClaims, TrustedIssuer, Verification, VerifyOptions } from "./tokens.ts";

/** The value at a dotted path (`realm_access.roles`), or a claim named with dots. */
export function claimAt(payload: Record<string, unknown>, path: string): unknown {
  // Auth0's namespaced claims are URLs with dots: a whole-name match comes first.
  if (Object.hasOwn(payload, path)) return payload[path];
  let value: unknown = payload;
  for (const part of path.split(".")) {
    if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
    if (!Object.hasOwn(value, part)) return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

/** Maps the role claim (a string or an array) to a role; `admin` wins over `viewer`. */
export function mapRole(value: unknown, roles: IssuerConfig["roles"]): Role | null {
  const values = typeof value === "string"
    ? [value]
    : Array.isArray(value)
    ? value.filter((v): v is string => typeof v === "string")
    : [];
  const admin = roles?.admin ?? ["admin"];
  const viewer = roles?.viewer ?? ["viewer"];
  if (values.some((v) => admin.includes(v))) return "admin";
  if (values.some((v) => viewer.includes(v))) return "viewer";
  return null;
}

/** A token from a trusted identity provider: its keys and algorithms only. */
export async function verifyIssuerToken(
  trusted: TrustedIssuer,
  token: string,
  options: VerifyOptions,
): Promise<Verification> {
  const { config } = trusted;
  const now = options.now ?? Date.now();
  let payload: Record<string, unknown>;
  try {
    ({ payload } = await jwtVerify(token, trusted.keys.getKey, {
      algorithms: config.algorithms,
      issuer: config.issuer,
      audience: config.audience,
      requiredClaims: ["exp", "iat"],
      clockTolerance: CLOCK_TOLERANCE_S,
      currentDate: new Date(now),
    }));
  } catch (error) {
    if (error instanceof KeyUnavailableError) return failure("key_unavailable");
    return failureFromJose(error);
  }
  const user = claimAt(payload, config.userClaim);
  // `user` in a failure is the mapped user name, not always `sub`.
  const named = { ...payload, sub: typeof user === "string" ? user : undefined };
  if (typeof user !== "string" || user.length === 0) return failure("invalid_claims", named);
  const checked = checkTimes(payload, now / 1000);
  if (checked) return checked.ok ? checked : { ...checked, user };
  if (payload.jti !== undefined && typeof payload.jti !== "string") {
    return failure("invalid_claims", named);
  }
  const role = mapRole(claimAt(payload, config.roleClaim), config.roles);
  const claims: AccessClaims = {
    sub: user,
    role: role ?? ("" as Role),
    jti: text(payload.jti),
    sid: null,
    iat: payload.iat as number,
    exp: payload.exp as number,
  };
  if (options.isRevoked && await options.isRevoked(claims)) {
    return failure("revoked", named);
  }
  if (role === null) return failure("forbidden", named);
  return { ok: true, claims };
}
