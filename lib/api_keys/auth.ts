/**
 * Who is calling an API that API keys may use: an API key, an access token,
 * or a session cookie. One middleware decides it for a route and an access
 * rule, so each route names what it lets in.
 */
import type { Context, MiddlewareHandler } from "hono";
import { getConnInfo } from "hono/deno";
import type { AttemptLog } from "../attempt_log.ts";
import { clientIp } from "../client_ip.ts";
import { ApiError } from "../http_errors.ts";
import { requestSession } from "../session_cookie.ts";
import type { SessionTimeouts } from "../sessions.ts";
import { type AccessClaims, type TokenKey, verifyAccessToken } from "../tokens.ts";
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

/**
 * Authenticates the request and checks `access`: 401 `unauthorized` for no
 * or bad credentials, 403 `forbidden` for credentials outside it. A failed
 * key authentication (no credentials at all, an unknown or a revoked key) is
 * recorded in the attempt log with transport `api_key` before the answer.
 */
export function requireAccess(deps: KeyAuthDeps, access: Access): MiddlewareHandler<PrincipalEnv> {
  return async (c, next) => {
    const started = performance.now();
    const header = c.req.header("authorization") ?? "";
    const scheme = /^(Bearer|Token)(?:[ ]+(\S*))?\s*$/i.exec(header);
    const credential = scheme?.[2] ?? "";
    let principal: Principal | null = null;
    const fail = async (
      reason: "missing_token" | "invalid_signature" | "revoked",
      key: { id: string; name: string } | null,
    ): Promise<never> => {
      await deps.attempts.record({
        ip: clientIp(c.req.raw.headers, remoteAddress(c), deps.config.trustProxy),
        user: key?.name ?? null,
        outcome: "failure",
        reason,
        transport: "api_key",
        origin: c.req.header("origin") ?? null,
        userAgent: c.req.header("user-agent") ?? null,
        tokenId: key?.id ?? null,
        durationMs: performance.now() - started,
      });
      throw unauthorized();
    };
    if (scheme && (scheme[1].toLowerCase() === "token" || credential.startsWith("lk_"))) {
      if (credential === "") await fail("missing_token", null);
      const record = await deps.keys.lookup(credential);
      if (record === null) await fail("invalid_signature", null);
      if (record!.revokedAt !== null) await fail("revoked", record);
      principal = { kind: "key", id: record!.id, name: record!.name, scope: record!.scope };
    } else if (scheme) {
      // A Bearer header decides alone: a bad token is not rescued by a cookie.
      const result = await verifyAccessToken(deps.tokenKey, credential, {
        isRevoked: deps.isRevoked,
      });
      if (!result.ok) {
        if (result.reason === "missing_token") await fail("missing_token", null);
        throw unauthorized();
      }
      principal = { kind: "user", name: result.claims.sub, role: result.claims.role, via: "token" };
    } else {
      const session = await requestSession(c, deps.kv, {
        trustProxy: deps.config.trustProxy,
        timeouts: deps.sessions,
      });
      if (session) {
        principal = { kind: "user", name: session.user, role: session.role, via: "session" };
      } else if (header === "" && !hasCookie(c)) {
        await fail("missing_token", null);
      } else {
        throw unauthorized();
      }
    }
    if (!allowed(access, principal!)) throw new ApiError(403, "forbidden");
    if (principal!.kind === "key") await deps.keys.used(principal!.id);
    c.set("principal", principal!);
    c.header("Cache-Control", "no-store");
    await next();
  };
}

function unauthorized(): ApiError {
  return new ApiError(401, "unauthorized", { headers: { "WWW-Authenticate": "Bearer" } });
}

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
