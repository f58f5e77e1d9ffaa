import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { Logger } from "../log.ts";
import { StoreUnavailable } from "../store/kv.ts";

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

/** Builds the app's one error handler: typed errors to JSON, the rest to 500. */
export function errorHandler(logger: Logger) {
  return function onError(error: Error, c: Context): Response {
    if (error instanceof ApiError) {
      for (const [name, value] of Object.entries(error.headers)) {
        c.header(name, value);
      }
      return c.json({ error: error.code, ...error.details }, error.status);
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
    return c.json({ error: "internal_error" }, 500);
  };
}
