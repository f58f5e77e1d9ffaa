/**
 * Who is calling an API that API keys may use: an API key, an access token,
 * or a session cookie. One middleware decides it for a route and an access
 * rule, so each route names what it lets in.
 */
import type { Context, MiddlewareHandler } from "hono";
import { getConnInfo } from "hono/deno";
import type { AttemptLog } from "../attempts/log.ts";
import { clientIp } from "../http/client_ip.ts";
import { ApiError, unauthorized } from "../http/errors.ts";
import type { IpGuard } from "../realtime/limits.ts";
import { hasSessionCookie, requestSession } from "../auth/session_cookie.ts";
import type { SessionTimeouts } from "../auth/sessions.ts";
import { type AccessClaims, type TokenKey, verifyAccessToken } from "../auth/tokens.ts";
import type { KeyCache } from "./key_cache.ts";
import type { KeyScope } from "./store.ts";

/** The caller of a request. */
export type Principal =
  | { kind: "user"; name: string; role: string; via: "token" | "session" }
  | { kind: "key"; id: string; name: string; scope: KeyScope };

/**
 * Who may use a route:
 * - `ingest`: an `ingest` key or an `admin` access token;
 * - `read`: a `read` key, any access token or the session cookie;
 * - `scrape`: a `read` key or an `admin` access token;
 * - `admin`: an `admin` access token or an admin's session cookie.
 */
export type Access = "ingest" | "read" | "scrape" | "admin";

/** What the middleware needs. */
export interface KeyAuthDeps {
  kv: Deno.Kv;
  keys: KeyCache;
  attempts: AttemptLog;
  tokenKey: TokenKey;
  config: { trustProxy: boolean };
  sessions: SessionTimeouts;
  isRevoked?: (claims: AccessClaims) => boolean | Promise<boolean>;
  /** The per-IP limit of failed attempts (shared with `/admin/ws`). */
  guard?: IpGuard;
}

/** Hono variables set by {@linkcode requireAccess}. */
export type PrincipalEnv = { Variables: { principal: Principal } };

function allowed(access: Access, p: Principal): boolean {
  if (p.kind === "key") {
    return access === "ingest"
      ? p.scope === "ingest"
      : (access === "read" || access === "scrape") &&
        p.scope === "read";
  }
  if (access === "read") return true;
  if (access === "admin") return p.role === "admin";
  // Ingest and scraping are for programs: a bearer token, not a browser's cookie.
  return p.role === "admin" && p.via === "token";
}

/** The scheme and credential of an `Authorization` header, when it is Bearer or Token. */
function credentialOf(header: string): { scheme: "bearer" | "token"; credential: string } | null {
  const m = /^(Bearer|Token)(?:[ ]+(\S*))?\s*$/i.exec(header);
  return m ? { scheme: m[1].toLowerCase() as "bearer" | "token", credential: m[2] ?? "" } : null;
}

/** Whether a request presents an API key: `Token <anything>` or `Bearer lk_...`. */
export function presentsApiKey(header: string | undefined): boolean {
  const found = credentialOf(header ?? "");
  return found !== null && (found.scheme === "token" || found.credential.startsWith("lk_"));
}

/**
 * Who is calling: an API key, an access token or a session cookie. Throws
 * 401 `unauthorized` for no or bad credentials; a failed key authentication
 * (no credentials at all, an unknown or a revoked key) is recorded in the
 * attempt log with transport `api_key` first.
 */
export async function authenticate(deps: KeyAuthDeps, c: Context): Promise<Principal> {
  const started = performance.now();
  const header = c.req.header("authorization") ?? "";
  const found = credentialOf(header);
  const fail = async (
    reason: "missing_token" | "invalid_signature" | "revoked",
    key: { id: string; name: string } | null,
    credential: "token" | "key" = "key",
  ): Promise<never> => {
    const ip = clientIp(c.req.raw.headers, remoteAddress(c), deps.config.trustProxy);
    const record = (reason: "missing_token" | "invalid_signature" | "revoked" | "rate_limited") =>
      deps.attempts.record({
        ip,
        user: key?.name ?? null,
        outcome: "failure",
        reason,
        transport: "api_key",
        origin: c.req.header("origin") ?? null,
        userAgent: c.req.header("user-agent") ?? null,
        tokenId: key?.id ?? null,
        durationMs: performance.now() - started,
      });
    // An IP past its failed attempts gets 429, recorded once per window, so
    // a flood of bad keys cannot turn into a flood of KV writes.
    const refusal = deps.guard?.overFailures(ip);
    if (refusal) {
      if (refusal.record) await record("rate_limited");
      throw new ApiError(429, "rate_limited", {
        details: { message: "Cannot authenticate as this address has failed too often: wait" },
        headers: { "Retry-After": String(Math.max(1, Math.ceil(refusal.retryAfterMs / 1000))) },
      });
    }
    await record(reason);
    throw unauthorized(reason, credential);
  };
  if (found && presentsApiKey(header)) {
    if (found.credential === "") return await fail("missing_token", null);
    const record = await deps.keys.lookup(found.credential);
    if (record === null) return await fail("invalid_signature", null);
    if (record.revokedAt !== null) return await fail("revoked", record);
    await deps.keys.used(record.id);
    return { kind: "key", id: record.id, name: record.name, scope: record.scope };
  }
  if (found) {
    // A Bearer header decides alone: a bad token is not rescued by a cookie.
    const result = await verifyAccessToken(deps.tokenKey, found.credential, {
      isRevoked: deps.isRevoked,
    });
    if (result.ok) {
      return { kind: "user", name: result.claims.sub, role: result.claims.role, via: "token" };
    }
    if (result.reason === "missing_token") return await fail("missing_token", null, "token");
    if (result.reason === "key_unavailable") throw keyUnavailable();
    throw unauthorized(result.reason);
  }
  const session = await requestSession(c, deps.kv, {
    trustProxy: deps.config.trustProxy,
    timeouts: deps.sessions,
  });
  if (session) return { kind: "user", name: session.user, role: session.role, via: "session" };
  if (header === "" && !hasCookie(c)) return await fail("missing_token", null, "token");
  throw unauthorized(
    hasSessionCookie(c, deps.config.trustProxy) ? "session_expired" : "missing_token",
  );
}

/**
 * Authenticates the request ({@linkcode authenticate}) and checks `access`:
 * 403 `forbidden` for credentials outside it (a known key out of its scope
 * is not a failed authentication and is not recorded).
 */
export function requireAccess(deps: KeyAuthDeps, access: Access): MiddlewareHandler<PrincipalEnv> {
  return async (c, next) => {
    const principal = await authenticate(deps, c);
    if (!allowed(access, principal)) {
      throw new ApiError(403, "forbidden", { details: { message: NEEDS[access] } });
    }
    c.set("principal", principal);
    c.header("Cache-Control", "no-store");
    await next();
  };
}

/**
 * For routes no API key may use: a request that presents a key is
 * authenticated as one (401 and an attempt record when it fails) and then
 * refused 403, as the contract has it for a key out of its scope. Other
 * requests pass on to the route's own authentication.
 */
export function refuseApiKeys(deps: KeyAuthDeps): MiddlewareHandler {
  return async (c, next) => {
    if (!presentsApiKey(c.req.header("authorization"))) return await next();
    await authenticate(deps, c);
    throw new ApiError(403, "forbidden", {
      details: {
        message:
          "Cannot use an API key here as keys are for /api/v1/metrics and /metrics only: use an access token or the session cookie",
      },
    });
  };
}

/** What each access rule needs, said as the next step of the one refused. */
const NEEDS: Record<Access, string> = {
  ingest:
    "Cannot push metrics with these credentials: use an API key of scope ingest (deno task key:add NAME --scope ingest) or an admin's access token",
  read:
    "Cannot read with these credentials: use an API key of scope read, an access token or the session cookie",
  scrape:
    "Cannot scrape with these credentials: use an API key of scope read (deno task key:add NAME --scope read) or an admin's access token",
  admin:
    "Cannot use this route as it is for admins only: sign in as an admin, or use an admin's access token",
};

function hasCookie(c: Context): boolean {
  return (c.req.header("cookie") ?? "").trim() !== "";
}

function remoteAddress(c: Context): string | undefined {
  try {
    return getConnInfo(c).remote.address;
  } catch {
    return undefined;
  }
}

/**
 * 503 for a token of a trusted identity provider whose keys cannot be had
 * (CONTRACT 8): the server's trouble, not the client's, so no 401.
 */
export function keyUnavailable(): ApiError {
  return new ApiError(503, "unavailable", {
    details: {
      reason: "key_unavailable",
      message: "the keys of the token's issuer cannot be fetched now: retry later",
    },
    headers: { "Retry-After": "30" },
  });
}
