import { type Context, Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { getConnInfo } from "hono/deno";
import { z } from "zod";
import { clientIp } from "../lib/http/client_ip.ts";
import type { AttemptLog } from "../lib/attempts/log.ts";
import type { Config } from "../lib/config.ts";
import type { Assets } from "../lib/http/assets.ts";
import { renderPage } from "../lib/http/html.ts";
import { ApiError, issueList, unauthorized } from "../lib/http/errors.ts";
import { type Limits, WindowCounter } from "../lib/realtime/limits.ts";
import { LoginGuard } from "../lib/auth/login_guard.ts";
import type { Logger } from "../lib/log.ts";
import { crossSiteReason, describeExpectation, expectedOrigin } from "../lib/http/origin.ts";
import { MAX_PASSWORD_CHARS, verifyPassword } from "../lib/auth/passwords.ts";
import {
  clearSessionCookie,
  hasSessionCookie,
  requestSession,
  setSessionCookie,
} from "../lib/auth/session_cookie.ts";
import { createSession, deleteSession, type SessionTimeouts } from "../lib/auth/sessions.ts";
import { afterUserRevocation } from "../lib/auth/revocation.ts";
import { signAccessToken, type TokenKey } from "../lib/auth/tokens.ts";
import { getUser } from "../lib/auth/users.ts";
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
  /** Every login is an attempt record (transport `login`, CONTRACT 9). */
  attempts: AttemptLog;
}

/** The reasons a login is recorded with. */
type LoginReason = "ok" | "invalid_credentials" | "rate_limited" | "bad_message";

/** When the login request passed the same-site check, for the record's `durationMs`. */
type LoginEnv = { Variables: { loginStarted: number } };

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
export function authRoutes(deps: AuthDeps): Hono<LoginEnv> {
  const { kv, config, limits, logger } = deps;
  const app = new Hono<LoginEnv>();
  const perIp = new WindowCounter(limits.loginPerIp, limits.loginIpWindowMs);
  const lockout = new LoginGuard(kv, limits);

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

  /**
   * Records this login attempt and resolves once it is durable, before the
   * answer. `user` is the tried name only when that account exists: the
   * record may say who was tried, the answer never does.
   */
  const recordLogin = async (
    c: Context<LoginEnv>,
    reason: LoginReason,
    user: string | null,
  ): Promise<void> => {
    await deps.attempts.record({
      ip: clientIp(c.req.raw.headers, getConnInfo(c).remote.address, config.trustProxy),
      user,
      outcome: reason === "ok" ? "success" : "failure",
      reason,
      transport: "login",
      origin: c.req.header("origin") ?? null,
      userAgent: c.req.header("user-agent") ?? null,
      tokenId: null,
      durationMs: performance.now() - c.get("loginStarted"),
    });
  };
  /** The tried name, when that account exists. */
  const existing = async (name: string): Promise<string | null> =>
    (await getUser(kv, name)) ? name : null;

  // The form posts to /login, so a refused sign-in re-renders the page at
  // the address it was opened at; /auth/login stays for JSON and old forms.
  app.on(
    "POST",
    ["/auth/login", "/login"],
    sameSite,
    async (c, next) => {
      // After the same-site check: a refused cross-site post is no attempt.
      c.set("loginStarted", performance.now());
      await next();
    },
    bodyLimit({
      maxSize: MAX_LOGIN_BODY,
      onError: async (c) => {
        await recordLogin(c, "bad_message", null);
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
        // The body is not read: who was tried is not known.
        await recordLogin(c, "rate_limited", null);
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
        const tried = (raw as { username?: unknown } | undefined)?.username;
        await recordLogin(
          c,
          "bad_message",
          typeof tried === "string" && tried.length <= 64 ? await existing(tried) : null,
        );
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
              : issueList(parsed.error.issues),
          },
        });
      }
      const { username, password } = parsed.data;

      // The guess is counted before the password is checked, so concurrent
      // guesses get no more checks than the lock allows.
      const reservation = await lockout.reserve(username);
      if (!reservation.admitted) {
        await recordLogin(c, "rate_limited", await existing(username));
        logger.warn("login refused: account locked", {
          user: username,
          ip,
          lockedMs: reservation.retryAfterMs,
          why: reservation.why,
        });
        return tooMany(
          c,
          form,
          reservation.retryAfterMs,
          reservation.why === "locked"
            ? "Too many failed sign-ins for this account."
            : "Too many sign-ins for this account at once.",
          deps.assets,
          username,
        );
      }
      const user = await getUser(kv, username);
      // An unknown user is checked against a dummy hash: same time, same answer.
      if (!await verifyPassword(password, user?.password ?? null) || !user) {
        logger.info("login failed", { user: username, ip });
        await recordLogin(c, "invalid_credentials", user ? user.name : null);
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
      await lockout.succeeded(username);
      await recordLogin(c, "ok", user.name);
      const { secret, session } = await createSession(kv, user, deps.sessions);
      await afterUserRevocation(kv, user.name);
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
    if (!session) {
      throw unauthorized(
        hasSessionCookie(c, config.trustProxy) ? "session_expired" : "missing_token",
      );
    }
    await afterUserRevocation(kv, session.user);
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
