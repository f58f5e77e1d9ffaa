import { Hono, type MiddlewareHandler } from "hono";
import { type KeyAuthDeps, type PrincipalEnv, requireAccess } from "../lib/api_keys/auth.ts";
import { MAX_USER_CHARS } from "../lib/attempts/log.ts";
import type { Revocations } from "../lib/auth/revocations.ts";
import { ApiError } from "../lib/http/errors.ts";
import type { Logger } from "../lib/log.ts";
import { crossSiteReason, type OriginPolicy } from "../lib/http/origin.ts";
import type { ConnectionRecords } from "../lib/realtime/connections.ts";

/** What the connection routes need. */
export interface ConnectionRouteDeps extends KeyAuthDeps {
  config: KeyAuthDeps["config"] & OriginPolicy;
  connections: ConnectionRecords;
  revocations: Revocations;
  logger: Logger;
}

/**
 * `/api/v1/connections` and `/api/v1/users/:name/revoke` (CONTRACT 8.1):
 * see and end the deployment's sockets. Admins only: a viewer, a `read` key
 * or an `ingest` key gets 403.
 */
export function connectionRoutes(deps: ConnectionRouteDeps): Hono<PrincipalEnv> {
  const app = new Hono<PrincipalEnv>().basePath("/api/v1");
  const admin = requireAccess(deps, "admin");
  // A session cookie rides along on any request the browser makes: a change
  // made with one must come from the dashboard's own origin.
  const sameSite: MiddlewareHandler<PrincipalEnv> = async (c, next) => {
    const p = c.get("principal");
    if (p.kind === "user" && p.via === "session") {
      const reason = crossSiteReason(c.req.raw, deps.config);
      if (reason) throw new ApiError(403, "forbidden", { details: { message: reason } });
    }
    await next();
  };

  app.get("/connections", admin, async (c) => c.json({ items: await deps.connections.list() }));

  app.delete("/connections/:id", admin, sameSite, async (c) => {
    const id = c.req.param("id");
    if (!await deps.connections.disconnect(id)) {
      throw new ApiError(404, "not_found", {
        details: {
          message:
            `Cannot disconnect as no open socket has the id ${id}: it may have closed already; GET /api/v1/connections lists the open ones`,
        },
      });
    }
    const p = c.get("principal");
    deps.logger.info("connection ended by an admin", {
      connection: id,
      by: p.kind === "user" ? p.name : p.id,
    });
    return c.body(null, 204);
  });

  app.post("/users/:name/revoke", admin, sameSite, async (c) => {
    const name = c.req.param("name");
    if (name.length === 0 || name.length > MAX_USER_CHARS) {
      throw new ApiError(400, "invalid_request", {
        details: {
          message:
            `Cannot revoke the user as the name must be 1 to ${MAX_USER_CHARS} characters: current length is ${name.length}`,
        },
      });
    }
    // No local account needed: identity-provider users have none.
    await deps.revocations.revokeUser(name);
    const p = c.get("principal");
    deps.logger.info("user revoked by an admin", {
      user: name,
      by: p.kind === "user" ? p.name : p.id,
    });
    return c.body(null, 204);
  });

  return app;
}
