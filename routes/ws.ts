import { Hono } from "hono";
import { getConnInfo, upgradeWebSocket } from "hono/deno";
import type { Config } from "../lib/config.ts";
import type { IpGuard } from "../lib/limits.ts";
import { originAllowed } from "../lib/origin.ts";
import { clientIp } from "../lib/client_ip.ts";
import { type ClientInfo, Connection, type ConnectionDeps } from "../lib/connection.ts";
import { ApiError } from "../lib/http_errors.ts";
import type { FailureReason } from "../lib/protocol.ts";
import { type AccessClaims, verifyAccessToken } from "../lib/tokens.ts";

/** What the `/admin/ws` route needs. */
export interface WsDeps extends Omit<ConnectionDeps, "pending"> {
  config: Pick<Config, "allowedOrigins" | "trustProxy">;
  guard: IpGuard;
}

type Env = { Variables: { client: ClientInfo; preAuth: AccessClaims | null } };

const URL_TOKEN_PARAMS = ["token", "access_token", "authorization"];

/**
 * `GET /admin/ws`: every check that can be answered with an HTTP status runs
 * before the upgrade (CONTRACT 4); then the socket is handed to a
 * {@linkcode Connection}.
 */
export function wsRoutes(deps: WsDeps): Hono<Env> {
  const { config, attempts, tokenKey, guard } = deps;
  const connectionDeps: ConnectionDeps = { ...deps, pending: guard.pending };
  const app = new Hono<Env>();

  app.get(
    "/admin/ws",
    async (c, next) => {
      const started = performance.now();
      if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
        throw new ApiError(426, "upgrade_required", {
          details: { message: "/admin/ws only answers WebSocket upgrades" },
          headers: { Upgrade: "websocket" },
        });
      }
      const client: ClientInfo = {
        ip: clientIp(c.req.raw.headers, getConnInfo(c).remote.address, config.trustProxy),
        origin: c.req.header("origin") ?? null,
        userAgent: c.req.header("user-agent") ?? null,
      };
      const refuse = async (
        status: 400 | 401 | 403,
        reason: FailureReason,
        message: string,
        token: { user: string | null; tokenId: string | null } = { user: null, tokenId: null },
        transport: "upgrade" | "header" = "upgrade",
      ): Promise<never> => {
        await attempts.record({
          ...client,
          ...token,
          outcome: "failure",
          reason,
          transport,
          durationMs: performance.now() - started,
        }).catch((cause) => {
          throw new ApiError(503, "unavailable", {
            details: { message: "the attempt log cannot be written" },
            cause,
          });
        });
        const headers: Record<string, string> = status === 401
          ? { "WWW-Authenticate": `Bearer error="invalid_token"` }
          : {};
        throw new ApiError(status, status === 401 ? "unauthorized" : reason, {
          details: { reason, message },
          headers,
        });
      };

      const refusal = guard.refusal(client.ip);
      if (refusal) {
        const retryAfter = String(Math.max(1, Math.ceil(refusal.retryAfterMs / 1000)));
        if (refusal.record) {
          await attempts.record({
            ...client,
            user: null,
            tokenId: null,
            outcome: "failure",
            reason: "rate_limited",
            transport: "upgrade",
            durationMs: performance.now() - started,
          }).catch((error) => deps.logger.error("cannot record rate_limited", { error }));
        }
        throw new ApiError(429, "rate_limited", {
          details: {
            reason: "rate_limited",
            message: "too many failed or pending connections from this address",
          },
          headers: { "Retry-After": retryAfter },
        });
      }
      if (client.origin !== null && !originAllowed(c.req.raw, client.origin, config)) {
        await refuse(403, "bad_origin", `origin ${client.origin} may not open /admin/ws`);
      }
      const params = new URL(c.req.url).searchParams;
      if (URL_TOKEN_PARAMS.some((p) => params.has(p))) {
        await refuse(
          400,
          "token_in_url",
          'tokens in the URL leak into logs and proxies; send {"type":"auth","token":...} as the first message',
        );
      }

      let preAuth: AccessClaims | null = null;
      const authorization = c.req.header("authorization");
      if (authorization !== undefined) {
        const match = /^Bearer[ ]+(\S*)\s*$/i.exec(authorization);
        const result = await verifyAccessToken(tokenKey, match?.[1], {
          isRevoked: deps.isRevoked,
        });
        if (!result.ok) {
          await refuse(
            401,
            result.reason,
            match
              ? `the bearer token failed: ${result.reason}`
              : "Authorization must be 'Bearer <token>'",
            result,
            "header",
          );
        } else {
          preAuth = result.claims;
          await attempts.record({
            ...client,
            user: preAuth.sub,
            tokenId: preAuth.jti,
            outcome: "success",
            reason: "ok",
            transport: "header",
            durationMs: performance.now() - started,
          }).catch((cause) => {
            throw new ApiError(503, "unavailable", {
              details: { message: "the attempt log cannot be written" },
              cause,
            });
          });
        }
      }
      c.set("client", client);
      c.set("preAuth", preAuth);
      await next();
    },
    upgradeWebSocket((c) => {
      const connection = new Connection(connectionDeps, c.get("client"));
      const preAuth = c.get("preAuth");
      return {
        onOpen: (_event, ws) => connection.open(ws.raw as WebSocket, preAuth),
        onMessage: (event) => connection.message(event.data),
        onClose: () => connection.closed(),
        onError: () => connection.closed(),
      };
    }),
  );
  return app;
}
