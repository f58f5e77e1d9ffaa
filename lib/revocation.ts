import { revokedSessionKey, revokedTokenKey } from "./kv_keys.ts";
import type { AccessClaims } from "./tokens.ts";

/** Revocation records outlive the tokens they cover by this much (clock skew). */
const SLACK_MS = 60_000;

/**
 * Revokes one token by its `jti` until `expiresAt` (epoch ms), after which
 * the token fails on its own and the record expires.
 */
export async function revokeToken(
  kv: Deno.Kv,
  jti: string,
  expiresAt: number,
): Promise<void> {
  const expireIn = Math.max(1000, expiresAt - Date.now() + SLACK_MS);
  await kv.set(revokedTokenKey(jti), { at: Date.now() }, { expireIn });
}

/** Revokes a session, and so every token issued under it, until `expiresAt`. */
export async function revokeSession(
  kv: Deno.Kv,
  sid: string,
  expiresAt: number,
): Promise<void> {
  const expireIn = Math.max(1000, expiresAt - Date.now() + SLACK_MS);
  await kv.set(revokedSessionKey(sid), { at: Date.now() }, { expireIn });
}

/** Says whether a token's `jti` or its session has been revoked. */
export async function isRevoked(
  kv: Deno.Kv,
  claims: Pick<AccessClaims, "jti" | "sid">,
): Promise<boolean> {
  const keys: Deno.KvKey[] = [];
  if (claims.jti) keys.push(revokedTokenKey(claims.jti));
  if (claims.sid) keys.push(revokedSessionKey(claims.sid));
  if (keys.length === 0) return false;
  const entries = await kv.getMany(keys);
  return entries.some((e) => e.versionstamp !== null);
}
