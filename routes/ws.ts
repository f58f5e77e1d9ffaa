import { Hono } from "hono";
import { getConnInfo } from "hono/deno";
import type { AttemptInput } from "../lib/attempts/log.ts";
import type { Config } from "../lib/config.ts";
import { clientIp } from "../lib/http/client_ip.ts";
import { Connection } from "../lib/realtime/connection.ts";
import type { ClientInfo, ConnectionDeps } from "../lib/realtime/connection_deps.ts";
import { ApiError } from "../lib/http/errors.ts";
import type { IpGuard, PendingSlot } from "../lib/realtime/limits.ts";
import {
  describeExpectation,
  expectedOrigin,
  originAllowed,
  type OriginExpectation,
} from "../lib/http/origin.ts";
import { URL_TOKEN_PARAMS } from "../shared/url_token_params.ts";
import type { FailureReason } from "../shared/protocol.ts";
import { type AccessClaims, verifyAccessToken } from "../lib/auth/tokens.ts";
import { bearerCredentials } from "../lib/http/bearer.ts";
import { clientFields, ms } from "../lib/realtime/socket_log.ts";

/** What the `/admin/ws` route needs. */
export interface WsDeps extends ConnectionDeps {
  config: Pick<Config, "allowedOrigins" | "trustProxy">;
  guard: IpGuard;
  draining: { value: boolean };
}

type Env = {
  Variables: { client: ClientInfo; preAuth: AccessClaims | null; slot: PendingSlot };
};

/**
 * Deno pings a socket that has been quiet for half this long and drops it
 * when no pong comes back in the other half. The pings also keep proxies
 * (nginx's 60 s proxy_read_timeout) from cutting an idle dashboard.
 */
const IDLE_TIMEOUT_S = 30;

/**
 * `GET /admin/ws`: every check that can be answered with an HTTP status runs
 * before the upgrade (CONTRACT 4); then the socket is handed to a
 * {@linkcode Connection}.
 */
export function wsRoutes(deps: WsDeps): Hono<Env> {
  const { config, attempts, tokenKey, guard, logger } = deps;
  const connectionDeps: ConnectionDeps = deps;
  const app = new Hono<Env>();

  app.get(
    "/admin/ws",
    async (c, next) => {
      const started = performance.now();
      const client: ClientInfo = {
        ip: clientIp(c.req.raw.headers, getConnInfo(c).remote.address, config.trustProxy),
        origin: c.req.header("origin") ?? null,
        userAgent: c.req.header("user-agent") ?? null,
      };
      /** Logs a refusal; at info only when it is recorded, so the limiter bounds the lines. */
      const logRefusal = (
        status: number,
        reason: string,
        fields: Record<string, unknown> = {},
        level: "info" | "debug" = "info",
      ) =>
        logger[level]("upgrade refused", {
          status,
          reason,
          instance: deps.instanceId,
          ...fields,
          ...clientFields(client),
          durationMs: ms(performance.now() - started),
        });
      try {
        if (deps.draining.value) {
          throw new ApiError(503, "unavailable", {
            details: { message: "the server is stopping: reconnect in a moment" },
            headers: { "Retry-After": "1" },
          });
        }
        checkHandshake(c.req.raw.headers);
      } catch (error) {
        // Never recorded and not limited per IP: at debug, so no flood reaches the log.
        if (error instanceof ApiError) logRefusal(error.status, error.code, {}, "debug");
        throw error;
      }
      /** Records an attempt before answering; without a record there is no answer but 503. */
      const record = async (
        attempt: Omit<AttemptInput, keyof ClientInfo | "durationMs">,
      ): Promise<void> => {
        try {
          await attempts.record({ ...client, ...attempt, durationMs: performance.now() - started });
        } catch (cause) {
          throw new ApiError(503, "unavailable", {
            details: { message: "the attempt log cannot be written" },
            headers: { "Retry-After": "5" },
            cause,
          });
        }
      };
      const refuse = async (
        status: 400 | 401 | 403 | 503,
        reason: FailureReason,
        message: string,
        token: { user: string | null; tokenId: string | null } = { user: null, tokenId: null },
        expectation?: OriginExpectation,
      ): Promise<never> => {
        const transport = status === 401 || status === 503 ? "header" : "upgrade";
        await record({ ...token, outcome: "failure", reason, transport });
        logRefusal(status, reason, { transport, user: token.user, tokenId: token.tokenId });
        const headers: Record<string, string> = status === 401
          ? { "WWW-Authenticate": `Bearer error="invalid_token"` }
          : status === 503
          ? { "Retry-After": "30" }
          : {};
        throw new ApiError(
          status,
          status === 401 ? "unauthorized" : status === 503 ? "unavailable" : reason,
          { details: { reason, message, ...expectation }, headers },
        );
      };

      // The pending slot is taken here, synchronously with the check, and
      // held from before the 101: upgrades in flight count against the cap.
      const admission = guard.admit(client.ip);
      if (!admission.ok) {
        // One record per burst: the rest of the burst is only counted here.
        if (admission.record) {
          await record({
            user: null,
            tokenId: null,
            outcome: "failure",
            reason: "rate_limited",
            transport: "upgrade",
          });
          logRefusal(429, "rate_limited", { transport: "upgrade" });
        }
        throw new ApiError(429, "rate_limited", {
          details: {
            reason: "rate_limited",
            message: "too many failed or pending connections from this address",
          },
          headers: {
            "Retry-After": String(Math.max(1, Math.ceil(admission.retryAfterMs / 1000))),
          },
        });
      }
      const { slot } = admission;
      // Until a socket holds it, the slot is the upgrade's to give back.
      let upgraded = false;
      try {
        if (client.origin !== null && !originAllowed(c.req.raw, client.origin, config)) {
          // The record keeps its fixed shape (CONTRACT 5: origin is the refused
          // one); what was expected goes to the answer and the log.
          const expectation = expectedOrigin(c.req.raw, config);
          const message = `origin ${client.origin} may not open /admin/ws: expected ${
            describeExpectation(expectation)
          }`;
          deps.logger.warn("upgrade refused: bad origin", { ip: client.ip, message });
          await refuse(403, "bad_origin", message, undefined, expectation);
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
        // Only a Bearer header is ours: Basic credentials (say, from an nginx
        // auth_basic in front) are left alone, and the first message decides.
        const bearer = bearerCredentials(c.req.header("authorization"));
        if (bearer !== null) {
          const result = await verifyAccessToken(tokenKey, bearer, {
            isRevoked: deps.isRevoked,
          });
          if (!result.ok && result.reason === "key_unavailable") {
            // The server's trouble, not the token's: 503, retry once the keys can be had.
            await refuse(
              503,
              "key_unavailable",
              "the keys of the token's issuer cannot be fetched now: retry later",
            );
          } else if (!result.ok) {
            await refuse(401, result.reason, `the bearer token failed: ${result.reason}`, result);
          } else {
            preAuth = result.claims;
            await record({
              user: preAuth.sub,
              tokenId: preAuth.jti,
              outcome: "success",
              reason: "ok",
              transport: "header",
            });
          }
        }
        c.set("client", client);
        c.set("preAuth", preAuth);
        c.set("slot", slot);
        await next();
        upgraded = c.res.status === 101;
      } finally {
        if (!upgraded) slot.release();
      }
    },
    (c) => {
      const connection = new Connection(connectionDeps, c.get("client"), { slot: c.get("slot") });
      const preAuth = c.get("preAuth");
      // Deno's own upgrade rather than Hono's helper (hono/deno), which wraps
      // each socket in a context object and four closures, costing memory at
      // 10k sockets, and only accepts the token "websocket" while RFC 6455
      // lets it be any case.
      const { response, socket } = Deno.upgradeWebSocket(c.req.raw, {
        idleTimeout: IDLE_TIMEOUT_S,
      });
      listen(socket, connection, preAuth);
      return response;
    },
  );
  return app;
}

/**
 * Hands the socket's events to its connection. Listeners rather than `on…`
 * handlers, which wrap each in a closure of their own, no error listener,
 * and closures made here, outside the route's scope, which they would keep
 * alive: memory per socket at 10k. The open listener goes once it ran (it
 * holds the upgrade's claims).
 */
function listen(socket: WebSocket, connection: Connection, preAuth: AccessClaims | null): void {
  socket.addEventListener("open", () => connection.open(socket, preAuth), { once: true });
  socket.addEventListener("message", (event) => connection.message(event.data));
  // Without a close frame (the peer or the network went away) Deno sends an
  // error event, then a close event with code 0: that is 1006.
  socket.addEventListener(
    "close",
    (event) => connection.closed(event.code === 0 ? 1006 : event.code, event.reason),
  );
}

/**
 * Answers what Deno.upgradeWebSocket would otherwise throw on: a request
 * that is no WebSocket upgrade is 426; one whose handshake headers are
 * broken is 400, naming the header (a proxy that drops them shows here).
 */
function checkHandshake(headers: Headers): void {
  const upgrade = headers.get("upgrade")?.toLowerCase();
  const connection = headers.get("connection")?.toLowerCase().split(",").map((s) => s.trim());
  if (upgrade !== "websocket" || !connection?.includes("upgrade")) {
    throw new ApiError(426, "upgrade_required", {
      details: {
        message: upgrade === "websocket"
          ? "the Connection header must include Upgrade: a proxy in between may be dropping it"
          : "/admin/ws only answers WebSocket upgrades",
      },
      headers: { Upgrade: "websocket" },
    });
  }
  if (headers.get("sec-websocket-version") !== "13") {
    throw new ApiError(426, "upgrade_required", {
      details: { message: "only WebSocket version 13 is spoken" },
      headers: { "Sec-WebSocket-Version": "13" },
    });
  }
  if (!/^[A-Za-z0-9+/]{22}==$/.test(headers.get("sec-websocket-key") ?? "")) {
    throw new ApiError(400, "bad_handshake", {
      details: { message: "Sec-WebSocket-Key must be 16 random bytes in base64" },
    });
  }
}
