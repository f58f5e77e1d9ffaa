import { nearestHop } from "./forwarded.ts";

/** What origin checks need from the configuration. */
export interface OriginPolicy {
  allowedOrigins: string[] | null;
  trustProxy: boolean;
}

/** Whether the request reached us over https (directly or, trusted, via a proxy). */
export function isHttps(req: Request, trustProxy: boolean): boolean {
  const proto = trustProxy ? nearestHop(req.headers.get("x-forwarded-proto")) : undefined;
  return proto ? proto === "https" : new URL(req.url).protocol === "https:";
}

/** The request's own origin, as the browser saw it. */
export function ownOrigin(req: Request, trustProxy: boolean): string {
  const url = new URL(req.url);
  const forwardedHost = trustProxy ? nearestHop(req.headers.get("x-forwarded-host")) : undefined;
  const host = forwardedHost ?? req.headers.get("host") ?? url.host;
  return `${isHttps(req, trustProxy) ? "https:" : "http:"}//${host}`;
}

/**
 * Whether `origin` may talk to us: it is in `ALLOWED_ORIGINS`, or, when that
 * is unset, it is the request's own origin.
 */
export function originAllowed(req: Request, origin: string, policy: OriginPolicy): boolean {
  if (policy.allowedOrigins) return policy.allowedOrigins.includes(origin);
  return origin === ownOrigin(req, policy.trustProxy);
}

/** What an origin check expected, for a refusal that says it (CONTRACT 4: 403 `bad_origin`). */
export interface OriginExpectation {
  /** The origins that would have been let in. */
  expected: string[];
  /**
   * Where they came from: `{"ALLOWED_ORIGINS": ...}`, or the request headers
   * the own origin was built from (`Host`, and with TRUST_PROXY
   * `X-Forwarded-Host` and `X-Forwarded-Proto`; null when absent).
   */
  from: Record<string, string | null>;
}

/**
 * The origins `originAllowed` compares with, and the headers behind them,
 * so a refusal can say what was expected: behind a proxy that passes
 * `Host` without the port (nginx `$host`), the own origin has no port and
 * the browser's does, and only the headers show why.
 */
export function expectedOrigin(req: Request, policy: OriginPolicy): OriginExpectation {
  if (policy.allowedOrigins) {
    return {
      expected: policy.allowedOrigins,
      from: { ALLOWED_ORIGINS: policy.allowedOrigins.join(",") },
    };
  }
  const from: Record<string, string | null> = { Host: req.headers.get("host") };
  if (policy.trustProxy) {
    from["X-Forwarded-Host"] = req.headers.get("x-forwarded-host");
    from["X-Forwarded-Proto"] = req.headers.get("x-forwarded-proto");
  }
  return { expected: [ownOrigin(req, policy.trustProxy)], from };
}

/** An expectation in words: `http://a:8080 (from Host: a:8080, X-Forwarded-Proto: none)`. */
export function describeExpectation(e: OriginExpectation): string {
  const from = Object.entries(e.from).map(([k, v]) => `${k}: ${v ?? "none"}`).join(", ");
  return `${e.expected.join(" or ") || "no origin"} (from ${from})`;
}

/**
 * Why a state-changing request looks cross-site, or null when it does not.
 * Browsers send `Origin` on every POST and `Sec-Fetch-Site` on every request;
 * a client that sends neither is not a browser, so there is no ambient
 * cookie to abuse.
 */
export function crossSiteReason(req: Request, policy: OriginPolicy): string | null {
  const site = req.headers.get("sec-fetch-site");
  const origin = req.headers.get("origin");
  if (origin !== null && origin !== "null") {
    return originAllowed(req, origin, policy) ? null : `origin ${origin} is not allowed`;
  }
  if (origin === "null") return "an opaque origin is not allowed";
  if (site !== null && site !== "same-origin" && site !== "none") {
    return `Sec-Fetch-Site is ${site}`;
  }
  return null;
}
