/**
 * Signing in and out for `probe`: `POST /auth/login` on the same host as the
 * WebSocket, with each refusal (401, 429, 403, 400) explained in words, and
 * `POST /auth/logout` for the revoked scenarios.
 */
import { maskToken } from "../shared/mask_token.ts";
import { DEFAULT_TIMEOUT_MS, type ProbeOptions, type Step, step, type Target } from "./core.ts";
import { explainStatus, isoTime } from "./explain.ts";
import type { User } from "../shared/protocol.ts";

/** What `POST /auth/login` answered; `token` and `cookie` when it signed in. */
export interface LoginStep extends Step {
  name: "login";
  /** The HTTP status, when an answer came. */
  status: number | null;
  token: string | null;
  /** The session cookie pair (`name=value`), for logout. */
  cookie: string | null;
  expiresAt: number | null;
  user: User | null;
}

/** POSTs to `path` on the target's http(s) origin, trusting `caCerts` if given. */
async function post(
  target: Target,
  path: string,
  init: { headers: Record<string, string>; body?: string },
  options: ProbeOptions,
): Promise<Response> {
  const client = options.caCerts ? Deno.createHttpClient({ caCerts: options.caCerts }) : undefined;
  try {
    const res = await fetch(new URL(path, target.httpOrigin), {
      method: "POST",
      redirect: "manual",
      signal: AbortSignal.timeout(options.timeoutMs ?? DEFAULT_TIMEOUT_MS),
      client,
      ...init,
    });
    // Read the body here so the client can be closed with nothing pending.
    const body = await res.arrayBuffer();
    return new Response(res.status === 204 ? null : body, {
      status: res.status,
      headers: res.headers,
    });
  } finally {
    client?.close();
  }
}

/** Signs in with `POST /auth/login` on the same host and returns the token and session cookie. */
export async function loginStep(
  target: Target,
  credentials: { username: string; password: string },
  options: ProbeOptions = {},
): Promise<LoginStep> {
  const where = `POST ${target.httpOrigin}/auth/login as ${credentials.username}`;
  const started = performance.now();
  const fail = (summary: string, cause: string, status: number | null = null) =>
    step<LoginStep>({
      name: "login",
      result: "fail",
      summary,
      cause,
      status,
      token: null,
      cookie: null,
      expiresAt: null,
      user: null,
      ms: performance.now() - started,
    });
  let res: Response;
  try {
    res = await post(target, "/auth/login", {
      headers: { "Content-Type": "application/json", "User-Agent": "lookout-probe" },
      body: JSON.stringify(credentials),
    }, options);
  } catch (error) {
    return fail(
      `${where}: no answer`,
      `Cannot reach ${target.httpOrigin} to sign in (${
        (error as Error).message
      }): check the URL and that the server is running.`,
    );
  }
  const text = await res.text();
  const json = safeJson(text) as Record<string, unknown> | null;
  const summary = `${where}: ${res.status}`;
  if (res.status === 200 && typeof json?.token === "string") {
    const user = json.user as User;
    const expiresAt = Number(json.expiresAt);
    return step<LoginStep>({
      name: "login",
      result: "ok",
      summary: `${summary}, signed in as ${user?.name} (${user?.role}): token ${
        maskToken(json.token)
      } expires ${isoTime(expiresAt)}`,
      status: 200,
      token: json.token,
      cookie: res.headers.get("set-cookie")?.split(";")[0] ?? null,
      expiresAt,
      user,
      ms: performance.now() - started,
    });
  }
  const message = typeof json?.message === "string" ? ` ("${json.message}")` : "";
  switch (res.status) {
    case 401:
      return fail(
        summary,
        "Wrong user name or password (401 invalid_credentials; the server does not say which): check both, or reset the password with deno task user:add NAME.",
        401,
      );
    case 429: {
      const wait = res.headers.get("retry-after");
      return fail(
        summary,
        `Too many sign-in attempts (429${message}): wait ${
          wait ? `${wait} s (Retry-After)` : "a while"
        }; repeated failures lock the account for longer each time.`,
        429,
      );
    }
    case 403:
      return fail(
        summary,
        `The server refused the sign-in as cross-site (403${message}): a proxy in front may add an Origin or Sec-Fetch-Site header; sign in from the server's own origin.`,
        403,
      );
    case 400:
      return fail(
        summary,
        `The server refused the sign-in body (400${
          json?.issues ? ` ${JSON.stringify(json.issues)}` : ""
        }): the user name must be 1 to 64 characters and the password not empty.`,
        400,
      );
    default: {
      const cause = explainStatus(
        { status: res.status, headers: res.headers, json, body: text },
        { path: "/auth/login" },
      );
      return fail(summary, cause, res.status);
    }
  }
}

/** `POST /auth/logout` with the session cookie: the HTTP status, or the error in words. */
export async function logoutRequest(
  target: Target,
  cookie: string,
  options: ProbeOptions = {},
): Promise<number | string> {
  try {
    const res = await post(target, "/auth/logout", {
      headers: { Cookie: cookie, "User-Agent": "lookout-probe" },
    }, options);
    return res.status;
  } catch (error) {
    return (error as Error).message;
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
