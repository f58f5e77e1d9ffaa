import { Hono } from "hono";
import { zValidator } from "@hono/zod-validator";
import type { AttemptLog } from "../lib/attempts/log.ts";
import { keyUnavailable, refuseApiKeys } from "../lib/api_keys/auth.ts";
import type { KeyCache } from "../lib/api_keys/key_cache.ts";
import { AttemptQuery, listAttempts } from "../lib/attempts/query.ts";
import { exportAttempts, parseExportQuery } from "../lib/attempts/export.ts";
import { ApiError, issueList, unauthorized } from "../lib/http/errors.ts";
import type { DeploymentStats } from "../lib/stats/deployment.ts";
import { hasSessionCookie, requestSession } from "../lib/auth/session_cookie.ts";
import type { SessionTimeouts } from "../lib/auth/sessions.ts";
import { type AccessClaims, type TokenKey, verifyAccessToken } from "../lib/auth/tokens.ts";
import { bearerCredentials } from "../lib/http/bearer.ts";

/** What the `/api/v1` routes need. */
export interface ApiDeps {
  kv: Deno.Kv;
  stats: DeploymentStats;
  tokenKey: TokenKey;
  config: { trustProxy: boolean };
  sessions: SessionTimeouts;
  isRevoked?: (claims: AccessClaims) => boolean | Promise<boolean>;
  keys: KeyCache;
  attempts: AttemptLog;
}

type Env = { Variables: { user: { name: string; role: string } } };

/** `/api/v1/*`: the stats and the attempt log, for a valid bearer token or session. */
export function apiRoutes(deps: ApiDeps): Hono<Env> {
  const app = new Hono<Env>().basePath("/api/v1");

  // API keys are for the metrics routes only: anywhere else here a key is 403.
  app.use(refuseApiKeys(deps));
  app.use(async (c, next) => {
    const bearer = bearerCredentials(c.req.header("authorization"));
    let user: { name: string; role: string } | null = null;
    // Why there is no user, said back in the 401.
    let reason = "missing_token";
    if (bearer !== null) {
      // A Bearer header decides alone: a bad token is not rescued by a cookie.
      // Other schemes (Basic from a proxy's auth_basic) are not ours.
      const result = await verifyAccessToken(deps.tokenKey, bearer, {
        isRevoked: deps.isRevoked,
      });
      if (result.ok) user = { name: result.claims.sub, role: result.claims.role };
      else if (result.reason === "key_unavailable") throw keyUnavailable();
      else reason = result.reason;
    } else {
      const session = await requestSession(c, deps.kv, {
        trustProxy: deps.config.trustProxy,
        timeouts: deps.sessions,
      });
      if (session) user = { name: session.user, role: session.role };
      else if (hasSessionCookie(c, deps.config.trustProxy)) reason = "session_expired";
    }
    if (!user) throw unauthorized(reason);
    c.set("user", user);
    c.header("Cache-Control", "no-store");
    await next();
  });

  app.get("/stats", async (c) => c.json(await deps.stats.fresh()));

  app.get(
    "/attempts",
    zValidator("query", AttemptQuery, (result) => {
      if (!result.success) {
        throw new ApiError(400, "invalid_request", {
          details: {
            issues: issueList(result.error.issues),
          },
        });
      }
    }),
    async (c) => c.json(await listAttempts(deps.kv, c.req.valid("query"))),
  );

  // Every match of the filter as one download, streamed page by page.
  app.get("/attempts/export", async (c) => {
    const parsed = parseExportQuery(c.req.query());
    if (!parsed.ok) {
      throw new ApiError(400, "invalid_request", { details: { issues: parsed.issues } });
    }
    const stamp = new Date().toISOString().replace(/[:.]/g, "-");
    return c.body(await exportAttempts(deps.kv, parsed.query, parsed.format), 200, {
      "Content-Type": parsed.format === "csv" ? "text/csv; charset=utf-8" : "application/json",
      "Content-Disposition": `attachment; filename="lookout-attempts-${stamp}.${parsed.format}"`,
    });
  });

  return app;
}
