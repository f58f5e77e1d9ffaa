import { type Context, Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { getConnInfo } from "hono/deno";
import { z } from "zod";
import { clientIp } from "../lib/client_ip.ts";
import type { Config } from "../lib/config.ts";
import type { Assets } from "../lib/assets.ts";
import { renderPage } from "../lib/html.ts";
import { ApiError } from "../lib/http_errors.ts";
import { type Limits, WindowCounter } from "../lib/limits.ts";
import { clearLoginFailures, lockedFor, noteLoginFailure } from "../lib/login_guard.ts";
import type { Logger } from "../lib/log.ts";
import { crossSiteReason, describeExpectation, expectedOrigin } from "../lib/origin.ts";
import { MAX_PASSWORD_CHARS, verifyPassword } from "../lib/passwords.ts";
import { clearSessionCookie, requestSession, setSessionCookie } from "../lib/session_cookie.ts";
import { createSession, deleteSession, type SessionTimeouts } from "../lib/sessions.ts";
import { signAccessToken, type TokenKey } from "../lib/tokens.ts";
import { getUser } from "../lib/users.ts";
import { LoginPage } from "../components/LoginPage.tsx";

/** What the auth routes need. */
export interface AuthDeps {
  kv: Deno.Kv;
  config: Pick<Config, "allowedOrigins" | "trustProxy" | "accessTokenTtlS">;
  tokenKey: TokenKey;
  limits: Limits;
  sessions: SessionTimeouts;
  logger: Logger;
  assets: Assets;
  /** Revokes a session everywhere and closes its sockets. */
  revokeSession: (sid: string, until: number) => Promise<void>;
}

const LoginBody = z.object({
  username: z.string().min(1, "is required").max(64, "must be at most 64 characters"),
  password: z.string().min(1, "is required").max(
    MAX_PASSWORD_CHARS,
    `must be at most ${MAX_PASSWORD_CHARS} characters`,
  ),
});

/** The largest login body read; a bigger one is refused unread. */
const MAX_LOGIN_BODY = 8 * 1024;

function isForm(c: Context): boolean {
  const type = c.req.header("content-type") ?? "";
  return type.startsWith("application/x-www-form-urlencoded") ||
    type.startsWith("multipart/form-data");
}

function html(c: Context, status: 200 | 400 | 401 | 403 | 429, page: string) {
  c.header("Cache-Control", "no-store");
  return c.html(page, status);
}

/** `/login`, `/auth/login`, `/auth/token`, `/auth/logout` (CONTRACT 3). */
export function authRoutes(deps: AuthDeps): Hono {
  const { kv, config, limits, logger } = deps;
  const app = new Hono();
  const perIp = new WindowCounter(limits.loginPerIp, limits.loginIpWindowMs);

  /** Refuses a state-changing request that a browser sent from another site. */
  const sameSite = async (c: Context, next: () => Promise<void>) => {
    const reason = crossSiteReason(c.req.raw, config);
    if (reason) {
      // An Origin was refused: say which one was expected and from which
      // headers, since a proxy that rewrites Host is the usual cause.
      const origin = c.req.header("origin");
      const expectation = origin && origin !== "null"
        ? expectedOrigin(c.req.raw, config)
        : undefined;
      const message = `cross-site request: ${reason}${
        expectation ? `: expected ${describeExpectation(expectation)}` : ""
      }`;
      logger.warn("cross-site request refused", { path: c.req.path, reason: message });
      if (isForm(c) && c.req.path !== "/auth/logout") {
        return html(
          c,
          403,
          renderPage(
            <LoginPage
              assets={deps.assets}
              error={`Sign-in refused as a ${message}.${
                expectation
                  ? " If you opened this page at its usual address, a proxy in front of Lookout changes the Host it passes on (nginx: proxy_set_header Host $http_host, not $host)."
                  : ""
              }`}
            />,
          ),
        );
      }
      throw new ApiError(403, "forbidden", { details: { message, ...expectation } });
    }
    await next();
  };

  app.get("/login", (c) => html(c, 200, renderPage(<LoginPage assets={deps.assets} />)));

  // The form posts to /login, so a refused sign-in re-renders the page at
  // the address it was opened at; /auth/login stays for JSON and old forms.
  app.on(
    "POST",
    ["/auth/login", "/login"],
    sameSite,
    bodyLimit({
      maxSize: MAX_LOGIN_BODY,
      onError: () => {
        throw new ApiError(400, "invalid_request", {
          details: {
            issues: [{ path: "", message: `body must be at most ${MAX_LOGIN_BODY} bytes` }],
          },
        });
      },
    }),
    async (c) => {
      const form = isForm(c);
      const ip = clientIp(c.req.raw.headers, getConnInfo(c).remote.address, config.trustProxy);
      const throttled = perIp.blockedFor(ip);
      if (throttled > 0) {
        return tooMany(
          c,
          form,
          throttled,
          "Too many sign-in attempts from this address.",
          deps.assets,
        );
      }
      perIp.hit(ip);

      let raw: unknown;
      try {
        raw = form
          ? Object.fromEntries(Object.entries(await c.req.parseBody()))
          : await c.req.json();
      } catch {
        raw = undefined;
      }
      const parsed = LoginBody.safeParse(raw);
      if (!parsed.success) {
        if (form) {
          return html(
            c,
            400,
            renderPage(
              <LoginPage assets={deps.assets} error="Enter a user name and a password." />,
            ),
          );
        }
        throw new ApiError(400, "invalid_request", {
          details: {
            issues: raw === undefined
              ? [{ path: "", message: "body must be JSON or a form with username and password" }]
              : parsed.error.issues.map((i) => ({
                path: i.path.map(String).join("."),
                message: i.message,
              })),
          },
        });
      }
      const { username, password } = parsed.data;

      const locked = await lockedFor(kv, username);
      if (locked > 0) {
        logger.warn("login refused: account locked", { user: username, ip, lockedMs: locked });
        return tooMany(
          c,
          form,
          locked,
          "Too many failed sign-ins for this account.",
          deps.assets,
          username,
        );
      }
      const user = await getUser(kv, username);
      // An unknown user is checked against a dummy hash: same time, same answer.
      if (!await verifyPassword(password, user?.password ?? null) || !user) {
        const lockMs = await noteLoginFailure(kv, username, limits);
        logger.info("login failed", { user: username, ip, lockedMs: lockMs });
        if (form) {
          return html(
            c,
            401,
            renderPage(
              <LoginPage
                assets={deps.assets}
                error="Wrong user name or password."
                username={username}
              />,
            ),
          );
        }
        throw new ApiError(401, "invalid_credentials");
      }
      await clearLoginFailures(kv, username);
      const { secret, session } = await createSession(kv, user, deps.sessions);
      const issued = await signAccessToken(deps.tokenKey, {
        sub: user.name,
        role: user.role,
        ttlS: config.accessTokenTtlS,
        sid: session.id,
      });
      setSessionCookie(c, secret, {
        trustProxy: config.trustProxy,
        maxAgeS: Math.floor(deps.sessions.maxAgeMs / 1000),
      });
      c.header("Cache-Control", "no-store");
      logger.info("login", { user: user.name, ip, session: session.id.slice(0, 8) });
      if (form) return c.redirect("/admin", 303);
      return c.json({
        token: issued.token,
        expiresAt: issued.expiresAt,
        user: { name: user.name, role: user.role },
      });
    },
  );

  app.post("/auth/token", sameSite, async (c) => {
    c.header("Cache-Control", "no-store");
    const session = await requestSession(c, kv, {
      trustProxy: config.trustProxy,
      timeouts: deps.sessions,
    });
    if (!session) throw new ApiError(401, "unauthorized");
    const issued = await signAccessToken(deps.tokenKey, {
      sub: session.user,
      role: session.role,
      ttlS: Math.max(
        1,
        Math.min(config.accessTokenTtlS, Math.floor((session.expiresAt - Date.now()) / 1000)),
      ),
      sid: session.id,
    });
    return c.json({ token: issued.token, expiresAt: issued.expiresAt });
  });

  app.post("/auth/logout", sameSite, async (c) => {
    const session = await requestSession(c, kv, {
      trustProxy: config.trustProxy,
      timeouts: deps.sessions,
    });
    if (session) {
      // Tokens issued under the session live at most one TTL from now.
      await deps.revokeSession(session.id, Date.now() + config.accessTokenTtlS * 1000);
      await deleteSession(kv, session.id);
      logger.info("logout", { user: session.user, session: session.id.slice(0, 8) });
    }
    clearSessionCookie(c, config.trustProxy);
    c.header("Cache-Control", "no-store");
    if (isForm(c)) return c.redirect("/login", 303);
    return c.body(null, 204);
  });

  return app;
}

function tooMany(
  c: Context,
  form: boolean,
  ms: number,
  message: string,
  assets: Assets,
  username?: string,
) {
  const seconds = Math.max(1, Math.ceil(ms / 1000));
  c.header("Retry-After", String(seconds));
  if (form) {
    return html(
      c,
      429,
      renderPage(
        <LoginPage
          assets={assets}
          error={`${message} Try again in ${seconds} s.`}
          username={username}
        />,
      ),
    );
  }
  throw new ApiError(429, "rate_limited", {
    details: { retryAfter: seconds, message },
    headers: { "Retry-After": String(seconds) },
  });
}
