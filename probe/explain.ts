/**
 * Plain words for what `probe` sees below the WebSocket: DNS, TCP and TLS
 * failures, HTTP statuses before the upgrade, a drop with no close frame,
 * and token times against the server's clock. Close codes themselves are
 * explained by `shared/close_explanations.ts`; this module only adds what it cannot know.
 */
import { decodeJwt } from "jose";
import { explainClose } from "../shared/close_explanations.ts";
import { maskToken } from "../shared/mask_token.ts";
import { URL_TOKEN_PARAMS } from "../shared/url_token_params.ts";

/** The URL as text with any token in its query shortened. */
export function redactUrl(url: URL): string {
  const copy = new URL(url);
  for (const name of URL_TOKEN_PARAMS) {
    const value = copy.searchParams.get(name);
    if (value !== null) copy.searchParams.set(name, maskToken(value));
  }
  return copy.href.replaceAll("%E2%80%A6", "…");
}

/** An epoch-ms time as ISO text to the second. */
export function isoTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** A duration in words: `850 ms`, `42 s`, `5 min 2 s`, `3 h 10 min`. */
export function duration(ms: number): string {
  const a = Math.abs(ms);
  if (a < 1000) return `${Math.round(a)} ms`;
  const s = Math.round(a / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min${s % 60 ? ` ${s % 60} s` : ""}`;
  const m = Math.round(s / 60);
  return `${Math.floor(m / 60)} h${m % 60 ? ` ${m % 60} min` : ""}`;
}

/**
 * The server's clock minus this machine's, in ms, from a `Date` header read
 * at `localNow`. The header has whole seconds, so the middle of its second is
 * the best guess; null without a readable header.
 */
export function clockSkew(dateHeader: string | null, localNow: number): number | null {
  const server = dateHeader ? Date.parse(dateHeader) : NaN;
  return Number.isNaN(server) ? null : server + 500 - localNow;
}

/** The skew in words. Under 2 s is noise: Date has whole seconds, and servers cache it. */
export function describeSkew(skewMs: number | null): string {
  if (skewMs === null) return "the server sent no Date header, so its clock is unknown";
  const s = Math.round(skewMs / 1000);
  if (Math.abs(skewMs) < 2000) return "the clocks agree to within a second or so";
  return `the server's clock is ${duration(Math.abs(s) * 1000)} ${
    s > 0 ? "ahead of" : "behind"
  } this machine's`;
}

/** Clocks as a probe saw them: this machine's, and the server's from its Date header. */
export interface Clocks {
  localNow: number;
  skewMs: number | null;
}

/**
 * For `token_expired` and `token_not_yet_valid`: one sentence with the
 * token's times against both clocks, and whom to blame. Null for other
 * reasons or a token that does not decode.
 */
export function explainTokenTimes(token: string, reason: string, clocks: Clocks): string | null {
  let payload;
  try {
    payload = decodeJwt(token);
  } catch {
    return null;
  }
  const { localNow, skewMs } = clocks;
  const serverNow = localNow + (skewMs ?? 0);
  const seconds = (v: unknown) => typeof v === "number" ? v * 1000 : null;
  const clock = skewMs === null
    ? `this machine ${isoTime(localNow)}; the server sent no Date header`
    : `server time ${isoTime(serverNow)} from its Date header, this machine ${isoTime(localNow)}: ${
      describeSkew(skewMs)
    }`;
  const exp = seconds(payload.exp);
  if (reason === "token_expired" && exp !== null) {
    if (exp > localNow) {
      return `The token expired ${
        duration(serverNow - exp)
      } ago by the server's clock but not by this machine's (exp ${
        isoTime(exp)
      }; ${clock}): fix the clocks (NTP) of the token's issuer and the server.`;
    }
    return `The token expired ${duration(Math.max(serverNow, localNow) - exp)} ago (exp ${
      isoTime(exp)
    }; ${clock}): get a fresh one from /auth/token, or sign in again.`;
  }
  const from = Math.max(seconds(payload.iat) ?? -Infinity, seconds(payload.nbf) ?? -Infinity);
  if (reason === "token_not_yet_valid" && from > -Infinity) {
    return `The token is valid only from ${isoTime(from)}, ${
      duration(from - serverNow)
    } ahead by the server's clock (${clock}): the issuer's clock runs ahead; fix the clocks (NTP).`;
  }
  return null;
}

/**
 * For `invalid_claims` and `key_unavailable`: one sentence naming the token's
 * issuer (`iss`, read without verifying), so an unknown issuer or an
 * identity provider whose keys are out of reach is plain. Null otherwise.
 */
export function explainTokenIssuer(token: string, reason: string): string | null {
  if (reason !== "invalid_claims" && reason !== "key_unavailable") return null;
  let iss: unknown;
  try {
    iss = decodeJwt(token).iss;
  } catch {
    return null;
  }
  if (typeof iss !== "string") return null;
  if (reason === "key_unavailable") {
    return `The server could not fetch the keys of the token's issuer ${
      JSON.stringify(iss)
    } (its jwksUrl in JWT_ISSUERS is down, unreachable from the server, or answers too slowly or too much), so it refused for now: check that URL from the server and retry.`;
  }
  return `The token's claims are wrong for this server (its iss is ${
    JSON.stringify(iss)
  }): an iss that is neither the server's JWT_ISSUER nor an issuer in its JWT_ISSUERS is refused, so add that issuer to JWT_ISSUERS, else check aud, sub, exp and iat.`;
}

/** A close in words; with the token's times, or its issuer, when they explain it. */
export function explainAuthClose(
  code: number,
  reason: string,
  context: { token?: string; clocks?: Clocks } = {},
): string {
  const times = context.token && context.clocks
    ? explainTokenTimes(context.token, reason, context.clocks)
    : null;
  const issuer = context.token ? explainTokenIssuer(context.token, reason) : null;
  return times ?? issuer ?? explainClose(code, reason);
}

/**
 * The connection ended without a close frame, after a 101: what a browser
 * reports as 1006. `silenceMs` is how long the server had sent nothing (no
 * frame, not even a ping) when it ended. After a 101 the proxy did pass the
 * Upgrade headers, so they are never the explanation; a cut after seconds of
 * silence is a proxy's idle timeout, a cut right after a frame is a restart
 * or a network cut.
 */
export function explainDrop(error: string | null, silenceMs = 0): string {
  const detail = error ? ` (${error})` : "";
  if (silenceMs >= 500) {
    return `The connection was cut after ${
      duration(silenceMs)
    } of silence: a proxy idle timeout (nginx proxy_read_timeout). A proxy that cuts idle connections (nginx proxy_read_timeout, 60 s by default) ends a socket on which nothing moved for that long with no close frame (1006)${detail}; Lookout pings a socket after 15 s of silence, so set the proxy's read timeout above 15 s (deploy/nginx.conf has 75 s), and a load balancer's idle timeout likewise.`;
  }
  return `The connection dropped with no close frame (1006) while data was still flowing${detail}: the app or a proxy in between restarted or crashed, or the network was cut. The upgrade itself went through (101), so the proxy's Upgrade headers are not the cause; check the app's and the proxy's logs.`;
}

/** A failed DNS lookup in words. */
export function explainDnsError(host: string, error: unknown): string {
  const message = (error as Error)?.message ?? String(error);
  if (error instanceof Deno.errors.NotFound || /no records found/i.test(message)) {
    return `The DNS has no address for ${host}: check the spelling and the DNS zone (names only in /etc/hosts are not DNS, and the connection below may still find them).`;
  }
  if ((error as Error)?.name === "TimeoutError" || /timed? ?out/i.test(message)) {
    return `The DNS servers did not answer for ${host} in time: check the resolver in /etc/resolv.conf and the network.`;
  }
  return `The DNS lookup of ${host} failed (${message}): check the name and the resolver.`;
}

/** A failed TCP connect in words. */
export function explainConnectError(
  host: string,
  port: number,
  error: unknown,
  timeoutMs: number,
): string {
  const message = (error as Error)?.message ?? String(error);
  const where = `${host}:${port}`;
  if (error instanceof Deno.errors.ConnectionRefused) {
    return `Nothing listens on ${where} (connection refused): check that the server (or its proxy) is running and that the port is right.`;
  }
  if (
    error instanceof Deno.errors.TimedOut || (error as Error)?.name === "TimeoutError" ||
    (error as Error)?.name === "AbortError"
  ) {
    return `No answer from ${where} within ${
      duration(timeoutMs)
    }: a firewall may be dropping the packets, or the host is down.`;
  }
  if (/lookup address|Name or service not known|nodename nor servname/i.test(message)) {
    return `The name ${host} does not resolve on this machine: check the spelling, DNS and /etc/hosts.`;
  }
  if (/unreachable|No route to host/i.test(message)) {
    return `There is no route to ${host}: the network or a firewall in between blocks it.`;
  }
  if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
    return `The probe may not open ${where}: run it with --allow-net.`;
  }
  return `Cannot connect to ${where} (${message}).`;
}

/** A failed TLS handshake in words, certificate errors named. */
export function explainTlsError(host: string, error: unknown): string {
  const message = (error as Error)?.message ?? String(error);
  const cert = (what: string, todo: string) =>
    `The server's certificate ${what} (${message}): ${todo}.`;
  if (/UnknownIssuer|self.signed|unknown ?ca/i.test(message)) {
    return cert(
      "is not signed by an authority this machine trusts",
      "install a certificate from a public CA, or trust its CA here (DENO_CERT=ca.pem)",
    );
  }
  if (/Expired/i.test(message)) return cert("has expired", "renew it");
  if (/NotValidYet/i.test(message)) {
    return cert("is not valid yet", "check the clocks of this machine and the server");
  }
  if (/NotValidForName|CertNotValidForName|not valid for/i.test(message)) {
    return cert(
      `does not name ${host}`,
      "connect with a name the certificate lists, or get one that lists this name",
    );
  }
  if (/corrupt message|InvalidContentType|wrong version|record overflow/i.test(message)) {
    return `The port does not speak TLS (${message}): use ws:// (or http://), or the TLS port.`;
  }
  if (/reset|closed|eof/i.test(message)) {
    return `The server closed the connection during the TLS handshake (${message}): it may not speak TLS on this port, or refuses this client's TLS versions.`;
  }
  return `The TLS handshake failed (${message}).`;
}

/** What {@linkcode explainStatus} reads from a refused upgrade. */
export interface RefusedUpgrade {
  status: number;
  headers: Headers;
  /** The JSON body Lookout answers with (`{"error","reason","message"}`), when it is one. */
  json: {
    error?: string;
    reason?: string;
    message?: string;
    /** With 403 bad_origin: the origins the server would have let in. */
    expected?: unknown;
    /** With 403 bad_origin: the headers (or ALLOWED_ORIGINS) they came from. */
    from?: unknown;
  } | null;
  body: string;
}

/** What the probe sent, for the words. */
export interface UpgradeContext {
  path: string;
  origin?: string;
  /** The token sent as `Authorization: Bearer`, if any. */
  token?: string;
  clocks?: Clocks;
}

/** The proxy or server that answered, from `Via` or `Server`, for the words. */
export function answeredBy(headers: Headers): string | null {
  return headers.get("via") ?? headers.get("server");
}

/** A status other than 101 in one sentence: the cause and what to do. */
export function explainStatus(res: RefusedUpgrade, ctx: UpgradeContext): string {
  const { status, headers, json } = res;
  const said = json?.message ? ` ("${json.message}")` : "";
  const by = answeredBy(headers);
  const proxy = by ? `the proxy (${by})` : "a proxy";
  const reason = json?.reason ?? json?.error;
  if (status >= 200 && status < 300) {
    return `The server answered ${status} with an ordinary response instead of switching protocols: ${ctx.path} is not a WebSocket endpoint (Lookout's is /admin/ws).`;
  }
  if (status >= 300 && status < 400) {
    return `The server redirects to ${
      headers.get("location") ?? "another address"
    }: WebSocket clients do not follow redirects, so probe that address (wss:// when it points to https).`;
  }
  switch (status) {
    case 400:
      if (reason === "token_in_url") {
        return `The URL carries a token, which the server refuses (400 token_in_url) because URLs leak into logs and proxies: drop it from the URL and send {"type":"auth","token":…} as the first message.`;
      }
      if (reason === "bad_handshake") {
        return `The app found the WebSocket handshake headers broken (400 bad_handshake${said}): something between the probe and the app rewrites Sec-WebSocket-Key or Sec-WebSocket-Version; check the proxy.`;
      }
      if (/plain HTTP request was sent to HTTPS port/i.test(res.body)) {
        return "This port speaks TLS (400 from the server): use wss:// or https://.";
      }
      return `The request was refused as malformed (400${
        reason ? ` ${reason}` : ""
      }${said}): check the URL and any proxy that rewrites the request.`;
    case 401: {
      if (json?.reason) {
        const words = explainAuthClose(4401, json.reason, { token: ctx.token, clocks: ctx.clocks });
        return `The server refused the Bearer token (401 ${json.reason}): ${
          words[0].toLowerCase()
        }${words.slice(1)}`;
      }
      const challenge = headers.get("www-authenticate");
      return `Something in front of the app asks for credentials (401${
        challenge ? `, WWW-Authenticate: ${challenge}` : ""
      }): ${proxy} has HTTP authentication on this path; open it for the WebSocket or pass its credentials.`;
    }
    case 403:
      if (reason === "bad_origin") return explainBadOrigin(res, ctx);
      return `Forbidden (403${reason ? ` ${reason}` : ""}${said}) by ${
        json ? "the app" : proxy
      }: check the access rules on this path.`;
    case 404:
      return `Nothing answers at ${ctx.path} here (404): Lookout's WebSocket is /admin/ws; check the URL and that the proxy forwards that path.`;
    case 426:
      return `The app did not see a WebSocket upgrade although the probe sent one (426${said}): ${proxy} in between drops the Upgrade and Connection headers; in nginx set proxy_http_version 1.1, proxy_set_header Upgrade $http_upgrade and proxy_set_header Connection $connection_upgrade (with the map in deploy/nginx.conf).`;
    case 429: {
      const wait = headers.get("retry-after");
      return `Too many failed or pending connections from this address (429${
        reason ? ` ${reason}` : ""
      }): wait ${
        wait ? `${wait} s (Retry-After)` : "a minute"
      } and stop whatever keeps failing before retrying.`;
    }
    case 502:
      return `${
        capital(proxy)
      } cannot reach the app behind it (502): check that Lookout is running and that the proxy's upstream address and port are right.`;
    case 503:
      if (reason === "key_unavailable") {
        const words = explainAuthClose(1013, reason, { token: ctx.token });
        return `The server could not check the Bearer token (503 key_unavailable): ${
          words[0].toLowerCase()
        }${words.slice(1)}`;
      }
      return `The service is unavailable (503${said}): Lookout answers so when its store (Deno KV) fails or it is stopping, and a proxy when it has no healthy upstream; check the app's logs and /healthz.`;
    case 504:
      return `${
        capital(proxy)
      } timed out waiting for the app (504): the app is hung or unreachable from the proxy, or the proxy's timeout is too short.`;
    default:
      return `Unexpected answer ${status}${reason ? ` ${reason}` : ""}${said}${
        by ? ` from ${by}` : ""
      }: a WebSocket server answers an upgrade with 101.`;
  }
}

/**
 * A 403 bad_origin by what the server said it expected: a proxy that passes
 * `Host` without the port (nginx `$host`) is named as such, since adding
 * the browser's origin to ALLOWED_ORIGINS would only hide it.
 */
function explainBadOrigin(res: RefusedUpgrade, ctx: UpgradeContext): string {
  const sent = ctx.origin ?? "(sent by the client)";
  const expected = Array.isArray(res.json?.expected)
    ? res.json.expected.filter((o): o is string => typeof o === "string")
    : [];
  const from = typeof res.json?.from === "object" && res.json.from !== null
    ? res.json.from as Record<string, unknown>
    : null;
  const headers = from
    ? Object.entries(from).map(([k, v]) => `${k}: ${typeof v === "string" ? v : "none"}`).join(
      ", ",
    )
    : "";
  if (from && "ALLOWED_ORIGINS" in from) {
    return `The server refused Origin ${sent} (403 bad_origin): it allows only ALLOWED_ORIGINS (${
      expected.join(", ")
    }); add ${sent} there (comma-separated exact origins) if it is yours.`;
  }
  if (expected.length === 1 && from) {
    const want = new URL(expected[0]);
    let browser: URL | null = null;
    try {
      browser = new URL(ctx.origin ?? "");
    } catch {
      // No usable origin was sent: the general words below.
    }
    if (browser && browser.hostname === want.hostname && browser.port && !want.port) {
      return `The server refused Origin ${sent} (403 bad_origin) as it expected ${
        expected[0]
      }, built from ${headers}: the proxy passes Host without the port (nginx proxy_set_header Host $host drops it), so the browser's own origin looks foreign; set proxy_set_header Host $http_host and X-Forwarded-Host $http_host as deploy/nginx.conf does, not ALLOWED_ORIGINS.`;
    }
    return `The server refused Origin ${sent} (403 bad_origin) as it expected ${
      expected[0]
    }, built from ${headers}: open the dashboard at that origin, or fix the proxy's Host, X-Forwarded-Host and X-Forwarded-Proto (with TRUST_PROXY=true) when it is wrong, or add ${sent} to ALLOWED_ORIGINS on the server (comma-separated exact origins).`;
  }
  return `The server refused Origin ${sent} (403 bad_origin): add it to ALLOWED_ORIGINS on the server (comma-separated exact origins), or connect from the server's own origin.`;
}

function capital(text: string): string {
  return text[0].toUpperCase() + text.slice(1);
}
