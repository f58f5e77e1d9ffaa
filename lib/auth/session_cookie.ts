import type { Context } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import { isHttps } from "../http/origin.ts";
import { liveSession, type Session, type SessionTimeouts } from "./sessions.ts";

/** The cookie's name: `__Host-` pins it to this host, path `/` and https. */
export function sessionCookieName(secure: boolean): string {
  return secure ? "__Host-lookout_session" : "lookout_session";
}

/** Sets the session cookie: HttpOnly, SameSite=Strict, Path=/, Secure over https. */
export function setSessionCookie(
  c: Context,
  secret: string,
  options: { trustProxy: boolean; maxAgeS: number },
): void {
  const secure = isHttps(c.req.raw, options.trustProxy);
  setCookie(c, sessionCookieName(secure), secret, {
    httpOnly: true,
    sameSite: "Strict",
    path: "/",
    secure,
    maxAge: options.maxAgeS,
  });
}

/** Clears the session cookie. */
export function clearSessionCookie(c: Context, trustProxy: boolean): void {
  const secure = isHttps(c.req.raw, trustProxy);
  deleteCookie(c, sessionCookieName(secure), { path: "/", secure });
}

/** The live session of the request's cookie, or null. */
export async function requestSession(
  c: Context,
  kv: Deno.Kv,
  options: { trustProxy: boolean; timeouts: SessionTimeouts },
): Promise<Session | null> {
  const secure = isHttps(c.req.raw, options.trustProxy);
  const secret = getCookie(c, sessionCookieName(secure));
  return await liveSession(kv, secret, options.timeouts);
}

/**
 * Whether the request carries a session cookie at all, live or not: a 401
 * then says the session ended (`session_expired`) rather than that no
 * credentials came (`missing_token`).
 */
export function hasSessionCookie(c: Context, trustProxy: boolean): boolean {
  return getCookie(c, sessionCookieName(isHttps(c.req.raw, trustProxy))) !== undefined;
}
