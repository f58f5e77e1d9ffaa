import { Hono } from "hono";
import { zValidator } from "@hono/zod-validator";
import { AttemptQuery, listAttempts } from "../lib/attempt_query.ts";
import { exportAttempts, parseExportQuery } from "../lib/attempt_export.ts";
import { ApiError } from "../lib/http_errors.ts";
import type { Hub } from "../lib/hub.ts";
import { requestSession } from "../lib/session_cookie.ts";
import type { SessionTimeouts } from "../lib/sessions.ts";
import { type AccessClaims, type TokenKey, verifyAccessToken } from "../lib/tokens.ts";

/** What the `/api/v1` routes need. */
export interface ApiDeps {
  kv: Deno.Kv;
  hub: Hub;
  tokenKey: TokenKey;
  config: { trustProxy: boolean };
  sessions: SessionTimeouts;
  isRevoked?: (claims: AccessClaims) => boolean | Promise<boolean>;
}

type Env = { Variables: { user: { name: string; role: string } } };

/** `/api/v1/*`: the stats and the attempt log, for a valid bearer token or session. */
export function apiRoutes(deps: ApiDeps): Hono<Env> {
  const app = new Hono<Env>().basePath("/api/v1");

  app.use(async (c, next) => {
    const bearer = /^Bearer(?:[ ]+(\S*))?\s*$/i.exec(c.req.header("authorization") ?? "");
    let user: { name: string; role: string } | null = null;
    if (bearer) {
      // A Bearer header decides alone: a bad token is not rescued by a cookie.
      // Other schemes (Basic from a proxy's auth_basic) are not ours.
      const result = await verifyAccessToken(deps.tokenKey, bearer[1], {
        isRevoked: deps.isRevoked,
      });
      if (result.ok) user = { name: result.claims.sub, role: result.claims.role };
    } else {
      const session = await requestSession(c, deps.kv, {
        trustProxy: deps.config.trustProxy,
        timeouts: deps.sessions,
      });
      if (session) user = { name: session.user, role: session.role };
    }
    if (!user) {
      throw new ApiError(401, "unauthorized", {
        headers: { "WWW-Authenticate": "Bearer" },
      });
    }
    c.set("user", user);
    c.header("Cache-Control", "no-store");
    await next();
  });

  app.get("/stats", async (c) => c.json(await deps.hub.stats()));

  app.get(
    "/attempts",
    zValidator("query", AttemptQuery, (result) => {
      if (!result.success) {
        throw new ApiError(400, "invalid_request", {
          details: {
            issues: result.error.issues.map((i) => ({
              path: i.path.map(String).join("."),
              message: i.message,
            })),
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
