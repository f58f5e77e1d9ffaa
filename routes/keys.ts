import { Hono } from "hono";
import { z } from "zod";
import { type KeyAuthDeps, type PrincipalEnv, requireAccess } from "../lib/api_keys/auth.ts";
import {
  createApiKey,
  KEY_SCOPES,
  listApiKeys,
  MAX_KEY_NAME,
  revokeApiKey,
} from "../lib/api_keys/store.ts";
import { ApiError, issueList } from "../lib/http/errors.ts";
import { crossSiteReason, type OriginPolicy } from "../lib/http/origin.ts";

const NewKey = z.object({
  name: z.string().trim().min(1).max(MAX_KEY_NAME),
  scope: z.enum(KEY_SCOPES),
});

/** `/api/v1/keys`: create, list and revoke API keys (admins only). */
export function keyRoutes(
  deps: KeyAuthDeps & { config: OriginPolicy },
): Hono<PrincipalEnv> {
  const app = new Hono<PrincipalEnv>().basePath("/api/v1/keys");
  app.use(requireAccess(deps, "admin"));
  // A session cookie rides along on any request the browser makes: a change
  // made with one must come from the dashboard's own origin.
  app.use(async (c, next) => {
    const p = c.get("principal");
    if (c.req.method !== "GET" && p.kind === "user" && p.via === "session") {
      const reason = crossSiteReason(c.req.raw, deps.config);
      if (reason) throw new ApiError(403, "forbidden", { details: { message: reason } });
    }
    await next();
  });

  app.post("/", async (c) => {
    let body: unknown;
    try {
      body = await c.req.json();
    } catch {
      throw new ApiError(400, "invalid_request", {
        details: { message: "Cannot create a key as the body is not JSON" },
      });
    }
    const parsed = NewKey.safeParse(body);
    if (!parsed.success) {
      throw new ApiError(400, "invalid_request", {
        details: {
          issues: issueList(parsed.error.issues),
        },
      });
    }
    const { record, key } = await createApiKey(deps.kv, parsed.data);
    return c.json({
      id: record.id,
      name: record.name,
      scope: record.scope,
      createdAt: record.createdAt,
      key,
    }, 201);
  });

  app.get("/", async (c) => c.json({ items: await listApiKeys(deps.kv) }));

  app.delete("/:id", async (c) => {
    const revoked = await revokeApiKey(deps.kv, c.req.param("id"));
    if (revoked === null) {
      throw new ApiError(404, "not_found", {
        details: {
          message: `Cannot revoke as no key has the id ${
            c.req.param("id")
          }: GET /api/v1/keys lists the keys`,
        },
      });
    }
    // This instance refuses the key at once; others within the cache's TTL.
    deps.keys.forget(revoked.hash);
    return c.body(null, 204);
  });

  return app;
}
