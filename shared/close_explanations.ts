/**
 * Plain-words explanations of WebSocket close codes, for the dashboard's
 * badge, the debug page and the `probe` CLI. It imports nothing, so the
 * browser bundle can carry it.
 */

const BY_REASON: Record<string, string> = {
  bad_message:
    'The first message was not an auth message: send {"type":"auth","token":...} as JSON text first.',
  missing_token: "The auth message had no token: fetch one from /auth/token and send it.",
  malformed_token: "The token is not a JWT: check that the whole token was sent, unquoted.",
  alg_not_allowed:
    "The token is signed with an algorithm the server does not accept (only HS256; never none).",
  invalid_signature:
    "The token's signature does not verify: it was signed with another secret (JWT_SECRET differs).",
  token_expired: "The token has expired: get a fresh one from /auth/token, or sign in again.",
  token_not_yet_valid:
    "The token is not valid yet (nbf or iat in the future): the clocks of issuer and server disagree.",
  invalid_claims:
    "The token's claims are wrong: a missing sub, exp or iat, a wrong aud, an iss that is neither JWT_ISSUER nor in JWT_ISSUERS, or a re-auth for another user.",
  revoked: "The session was signed out or the token revoked: sign in again.",
  forbidden: "The token's role is not admin or viewer: sign in as a user with one of them.",
  key_unavailable:
    "The keys of the token's identity provider could not be fetched (its JWKS URL is down or unreachable): try again later.",
  auth_timeout: "No auth message came in time after the socket opened.",
  rate_limited: "Too many messages, or too many failed attempts from this address: wait and retry.",
  slow_consumer: "The client did not read what the server sent, so the server let it go.",
  message_too_large: "A message was larger than the server accepts (MAX_MESSAGE_BYTES).",
};

const BY_CODE: Record<number, string> = {
  1000: "Closed normally.",
  1001: "The server is stopping (or the page is going away); reconnect shortly.",
  1005: "Closed without a status code.",
  1006:
    "The connection dropped with no close frame: often a proxy that does not pass the Upgrade and Connection headers, or a network cut.",
  1009: BY_REASON.message_too_large,
  1011:
    "The server hit an internal error (such as its store being unavailable) and closed the socket.",
  1012: "The server is restarting.",
  1013:
    "Try again later: the server is overloaded, or the identity provider's keys cannot be fetched.",
  1015: "The TLS handshake failed.",
  4400: BY_REASON.bad_message,
  4401: "Authentication failed: the token is missing, malformed, expired or does not verify.",
  4403: "Not allowed: the token was revoked or its role is not accepted.",
  4408: BY_REASON.auth_timeout,
  4409: BY_REASON.slow_consumer,
  4429: BY_REASON.rate_limited,
};

/**
 * The same reasons as answered by the HTTP API (a 401 from `/api/v1/*` or
 * `/auth/token`), where the socket's words ("the auth message") do not fit.
 */
const BY_API_REASON: Record<string, string> = {
  missing_token:
    "No credentials came: send Authorization: Bearer <token> (POST /auth/login or /auth/token gives one), or sign in at /login for the session cookie.",
  session_expired:
    "The session cookie is no longer a live session (signed out, idle too long or too old): sign in again at /login.",
  revoked: "The session was signed out or the token revoked: sign in again for a fresh token.",
};

/** The same reasons for an API key (`Authorization: Token ...` or `Bearer lk_...`). */
const BY_KEY_REASON: Record<string, string> = {
  missing_token:
    "The Authorization header names no API key: send Authorization: Token <key> with the whole key.",
  invalid_signature:
    "The API key is not known: check that the whole key was sent, or create one at /admin/keys or with deno task key:add.",
  revoked:
    "The API key was revoked: create a new one at /admin/keys or with deno task key:add, and use that.",
};

/**
 * Explains why an HTTP request was refused (an attempt reason of CONTRACT
 * 4.3, or `session_expired`) and what to do next, in one sentence: the
 * socket's words where they fit, so both say the same.
 */
export function explainRefusal(reason: string, credential: "token" | "key" = "token"): string {
  return (credential === "key" ? BY_KEY_REASON[reason] : undefined) ?? BY_API_REASON[reason] ??
    BY_REASON[reason] ?? `Refused as ${reason}.`;
}

/** Explains a close in one sentence, from its reason when known, else its code. */
export function explainClose(code: number, reason = ""): string {
  return BY_REASON[reason] ?? BY_CODE[code] ??
    `Closed with code ${code}${reason ? ` (${reason})` : ""}.`;
}
