/**
 * `probe --scenarios`: the token cases every deployment should answer the
 * same way (valid, expired, invalid signature, missing, revoked), each run
 * on its own connection and compared with what the contract expects.
 */
import { decodeJwt, SignJWT } from "jose";
import { openSocket, type ProbeOptions, type Target } from "./mod.ts";
import { explainAuthClose, explainDrop } from "./explain.ts";
import { DEFAULT_TIMEOUT_MS } from "./core.ts";
import { loginStep, logoutRequest } from "./login.ts";
import { ServerMessage } from "../shared/protocol.ts";
import type { FrameSocket } from "./ws_wire.ts";

/** One row of the table. `ok` is null for a skipped case. */
export interface ScenarioRow {
  case: string;
  expected: string;
  seen: string;
  ok: boolean | null;
  /** Why the row failed, in one sentence. */
  cause?: string;
}

/** Options of {@linkcode runScenarios}. */
export interface ScenarioOptions extends Pick<ProbeOptions, "origin" | "timeoutMs" | "caCerts"> {
  /** A token the server should accept. */
  token: string;
  /** The server's JWT_SECRET: only needed to forge the expired token. */
  secret?: string;
  /** Credentials for the revoked cases, which sign in and out. */
  login?: { username: string; password: string };
}

/** What one connection ended with. */
interface Seen {
  text: string;
  cause?: string;
}

const AUTHENTICATED = "authenticated";

/** Opens a socket, sends `first`, and reads until `authenticated` or the end. */
async function attempt(
  target: Target,
  first: unknown,
  options: ScenarioOptions,
  keepOpen = false,
): Promise<Seen & { socket?: FrameSocket }> {
  const opened = await openSocket(target, options);
  if ("failed" in opened) {
    return { text: opened.failed.summary, cause: opened.failed.cause };
  }
  const { socket } = opened;
  await socket.sendText(JSON.stringify(first));
  const seen = await until(socket, "authenticated", options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  if (seen.text === AUTHENTICATED && keepOpen) return { ...seen, socket };
  await socket.close();
  return seen;
}

/** Reads events until a message of `type` (with null: none will do), a close or a drop. */
async function until(
  socket: FrameSocket,
  type: string | null,
  timeoutMs: number,
): Promise<Seen> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const event = await socket.next(deadline - Date.now());
    switch (event.type) {
      case "text": {
        const parsed = ServerMessage.safeParse(safeJson(event.data));
        if (type !== null && parsed.success && parsed.data.type === type) return { text: type };
        continue;
      }
      case "close":
        return {
          text: `${event.code} ${event.reason}`.trim(),
          cause: explainAuthClose(event.code, event.reason),
        };
      case "dropped":
        return {
          text: "1006 (no close frame)",
          cause: explainDrop(event.error, Date.now() - socket.lastFrameAt),
        };
      case "timeout":
        return { text: `nothing within ${timeoutMs / 1000} s` };
      case "binary":
        continue;
    }
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

function row(name: string, expected: string, seen: Seen, hint?: string): ScenarioRow {
  const ok = seen.text === expected;
  return {
    case: name,
    expected,
    seen: seen.text,
    ok,
    cause: ok ? undefined : hint ?? seen.cause ?? `Expected ${expected}, saw ${seen.text}.`,
  };
}

function skipped(name: string, expected: string, why: string): ScenarioRow {
  return { case: name, expected, seen: `skipped: ${why}`, ok: null };
}

/** The valid token with the first character of its signature changed. */
export function breakSignature(token: string): string {
  const [header, payload, signature = ""] = token.split(".");
  const first = signature[0] === "A" ? "B" : "A";
  return `${header}.${payload}.${first}${signature.slice(1)}`;
}

/** A token like `token` (same sub, role, iss, aud) that expired five minutes ago. */
export async function forgeExpired(token: string, secret: string): Promise<string> {
  const claims = decodeJwt(token);
  const now = Math.floor(Date.now() / 1000);
  return await new SignJWT({ role: claims.role })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(String(claims.sub ?? "probe"))
    .setIssuer(String(claims.iss ?? "lookout"))
    .setAudience(claims.aud ?? "lookout")
    .setIssuedAt(now - 600)
    .setExpirationTime(now - 300)
    .setJti(crypto.randomUUID())
    .sign(new TextEncoder().encode(secret));
}

/** Runs every case against `target`, in order, and returns the table. */
export async function runScenarios(
  target: Target,
  options: ScenarioOptions,
): Promise<ScenarioRow[]> {
  const rows: ScenarioRow[] = [];
  const auth = (token?: string) => token === undefined ? { type: "auth" } : { type: "auth", token };
  const r401 = (reason: string) => `4401 ${reason}`;

  rows.push(row("valid token", AUTHENTICATED, await attempt(target, auth(options.token), options)));

  if (options.secret) {
    let expired: string | null = null;
    try {
      expired = await forgeExpired(options.token, options.secret);
    } catch {
      // The valid token does not decode; the row says so.
    }
    const seen = expired
      ? await attempt(target, auth(expired), options)
      : { text: "the valid token does not decode, so no expired copy could be made" };
    rows.push(row(
      "expired token",
      r401("token_expired"),
      seen,
      seen.text === r401("invalid_signature")
        ? "The secret given to the probe (JWT_SECRET or --kv) is not the server's: the forged token did not verify."
        : undefined,
    ));
  } else {
    rows.push(
      skipped(
        "expired token",
        r401("token_expired"),
        "set JWT_SECRET to forge an expired token, or pass --kv PATH (the server's KV file)",
      ),
    );
  }

  const broken = await attempt(target, auth(breakSignature(options.token)), options);
  rows.push(row(
    "invalid signature",
    r401("invalid_signature"),
    broken,
    broken.text === AUTHENTICATED
      ? "The server accepted a token whose signature was altered: it does not verify signatures; stop using it."
      : undefined,
  ));

  rows.push(row("missing token", r401("missing_token"), await attempt(target, auth(), options)));

  if (options.login) rows.push(...await revokedCases(target, options, options.login));
  else {
    const why = "needs --login (a session to sign out)";
    rows.push(skipped("revoked (open socket)", "4403 revoked", why));
    rows.push(skipped("revoked (new socket)", "4403 revoked", why));
  }
  return rows;
}

/** Signs in, connects, signs out: the open socket and a new one must both end 4403 revoked. */
async function revokedCases(
  target: Target,
  options: ScenarioOptions,
  credentials: { username: string; password: string },
): Promise<ScenarioRow[]> {
  const expected = "4403 revoked";
  const names = ["revoked (open socket)", "revoked (new socket)"];
  const session = await loginStep(target, credentials, options);
  if (!session.token || !session.cookie) {
    const seen = { text: `login failed: ${session.summary}`, cause: session.cause };
    return names.map((name) => row(name, expected, seen));
  }
  const first = { type: "auth", token: session.token };
  const open = await attempt(target, first, options, true);
  let onOpen: Seen = open;
  if (open.socket) {
    const status = await logoutRequest(target, session.cookie, options);
    onOpen = status === 204
      ? await until(open.socket, null, options.timeoutMs ?? DEFAULT_TIMEOUT_MS)
      : { text: `logout answered ${status}` };
    await open.socket.close();
  }
  if (onOpen.text.startsWith("nothing within")) {
    onOpen.cause =
      "The socket stayed open after its session was signed out: revocation does not reach open sockets.";
  }
  const again = await attempt(target, first, options);
  return [
    row(names[0], expected, onOpen),
    row(
      names[1],
      expected,
      again,
      again.text === AUTHENTICATED
        ? "A token from a signed-out session still authenticates: the server does not check revocation, or this connection reached an instance that does not share its store (KV) with the one that signed out (several workers on KV_PATH=:memory:?)."
        : undefined,
    ),
  ];
}
