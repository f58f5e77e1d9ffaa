import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { Logger } from "../log.ts";
import { StoreUnavailable } from "../store/kv.ts";
import { explainRefusal } from "../../shared/close_explanations.ts";

/** One refused field, in the API's `details.issues` shape: a dotted path and what is wrong. */
export interface Issue {
  path: string;
  message: string;
}

/** zod's issues in the API's `details.issues` shape, the one place they are turned into it. */
export function issueList(
  issues: readonly { path: readonly PropertyKey[]; message: string }[],
): Issue[] {
  return issues.map((i) => ({ path: i.path.map(String).join("."), message: i.message }));
}

/**
 * An error a request handler throws on purpose. `code` becomes the `error`
 * field of the JSON body; `details` are merged into it.
 */
export class ApiError extends HTTPException {
  readonly code: string;
  readonly details: Record<string, unknown>;
  readonly headers: Record<string, string>;

  constructor(
    status: ContentfulStatusCode,
    code: string,
    options: {
      details?: Record<string, unknown>;
      headers?: Record<string, string>;
      cause?: unknown;
    } = {},
  ) {
    super(status, { message: code, cause: options.cause });
    this.code = code;
    this.details = options.details ?? {};
    this.headers = options.headers ?? {};
  }
}

/**
 * The 401 of a request whose credentials failed: `reason` is the attempt
 * reason (CONTRACT 4.3, or `session_expired` for a cookie without a live
 * session), and `message` says what to do next, in the socket's words.
 */
export function unauthorized(reason: string, credential: "token" | "key" = "token"): ApiError {
  return new ApiError(401, "unauthorized", {
    details: { reason, message: explainRefusal(reason, credential) },
    headers: { "WWW-Authenticate": "Bearer" },
  });
}

/**
 * What to do next, for the errors thrown without a `message` of their own:
 * every API error says it (issue 13).
 */
const NEXT_STEP: Record<string, string> = {
  invalid_request:
    "Cannot accept the request as some of it is wrong: fix each field named in issues (its path and what is wrong)",
  not_found: "Nothing is here: check the path (docs/protocol.md lists the routes) or the id in it",
  forbidden: "Not allowed with these credentials: sign in as a user who may do this",
  invalid_credentials:
    "The user name or the password is wrong: check both, or have an admin reset the password with deno task user:add NAME",
  unauthorized: explainRefusal("missing_token"),
};

/** Builds the app's one error handler: typed errors to JSON, the rest to 500. */
export function errorHandler(logger: Logger) {
  return function onError(error: Error, c: Context): Response {
    if (error instanceof ApiError) {
      for (const [name, value] of Object.entries(error.headers)) {
        c.header(name, value);
      }
      const message = error.details.message ?? NEXT_STEP[error.code];
      return c.json(
        { error: error.code, ...error.details, ...(message === undefined ? {} : { message }) },
        error.status,
      );
    }
    if (error instanceof HTTPException) return error.getResponse();
    if (error instanceof StoreUnavailable) {
      logger.error("store unavailable", { method: c.req.method, path: c.req.path, error });
      c.header("Retry-After", "5");
      return c.json({
        error: "unavailable",
        message: "the store is unavailable: try again shortly",
      }, 503);
    }
    logger.error("request failed", {
      method: c.req.method,
      path: c.req.path,
      error,
    });
    return c.json({
      error: "internal_error",
      message:
        "The server failed on this request: its log line with this X-Request-Id says why; retry, and report it if it repeats",
    }, 500);
  };
}
