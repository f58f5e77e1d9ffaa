import type { MiddlewareHandler } from "hono";
import { isHttps } from "./origin.ts";

/** No inline script or style anywhere: everything comes from our own origin. */
const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

/**
 * Adds `nosniff` to every response, and to HTML a strict CSP, framing denied,
 * a Referrer-Policy, and HSTS when the request came over https.
 */
export function securityHeaders(trustProxy: boolean): MiddlewareHandler {
  return async function securityHeaders(c, next) {
    await next();
    const headers = c.res.headers;
    headers.set("X-Content-Type-Options", "nosniff");
    if (headers.get("content-type")?.startsWith("text/html")) {
      headers.set("Content-Security-Policy", CSP);
      headers.set("X-Frame-Options", "DENY");
      headers.set("Referrer-Policy", "same-origin");
      if (isHttps(c.req.raw, trustProxy)) {
        headers.set("Strict-Transport-Security", "max-age=31536000; includeSubDomains");
      }
    }
  };
}
