import { type Context, Hono } from "hono";
import {
  type KeyAuthDeps,
  type Principal,
  type PrincipalEnv,
  requireAccess,
} from "../lib/api_keys/auth.ts";
import { ApiError } from "../lib/http/errors.ts";
import { BodyError, readBody } from "../lib/metrics/body.ts";
import { linesToPoints, type Precision, PRECISIONS } from "../lib/metrics/influx.ts";
import { MAX_BODY_BYTES, MAX_POINTS } from "../lib/metrics/ingest.ts";
import type { Metrics } from "../lib/metrics/metrics.ts";
import { isMetricName, labelsProblem } from "../lib/metrics/points.ts";
import { exposition, PROMETHEUS_CONTENT_TYPE } from "../lib/metrics/prometheus.ts";
import { bucketSpan, listSeries, MAX_BUCKETS, queryMetric } from "../lib/metrics/query.ts";
import { type Step, STEP_NAMES } from "../lib/metrics/rollup.ts";

/** What the metrics routes need. */
export interface MetricsDeps extends KeyAuthDeps {
  metrics: Metrics;
}

type Issue = { path: string; message: string };

function invalid(issues: Issue[]): ApiError {
  return new ApiError(400, "invalid_request", { details: { issues } });
}

function callerOf(p: Principal): string {
  return p.kind === "key" ? `key:${p.id}` : `user:${p.name}`;
}

/** 429 with Retry-After when the caller is past its push limit (per key, per instance). */
function admit(deps: MetricsDeps, c: Context<PrincipalEnv>): number {
  const wait = deps.metrics.admit(callerOf(c.get("principal")));
  if (wait > 0) c.header("Retry-After", String(Math.max(1, Math.ceil(wait / 1000))));
  return wait;
}

const QUERY_PARAMS = new Set(["name", "from", "to", "step"]);

function epochParam(value: string | undefined, path: string, issues: Issue[]): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d{1,15}$/.test(value)) {
    issues.push({
      path,
      message: `must be epoch milliseconds: current value is ${JSON.stringify(value.slice(0, 40))}`,
    });
    return undefined;
  }
  return Number(value);
}

/**
 * Application metrics (CONTRACT 7.2, 7.3): pushing as JSON or InfluxDB line
 * protocol, the series list, queries, and the Prometheus exposition.
 */
export function metricsRoutes(deps: MetricsDeps): Hono<PrincipalEnv> {
  const app = new Hono<PrincipalEnv>();

  app.post("/api/v1/metrics", requireAccess(deps, "ingest"), async (c) => {
    if (admit(deps, c) > 0) {
      throw new ApiError(429, "rate_limited", {
        details: { message: "Cannot store the points as this key is over its push limit" },
        headers: { "Retry-After": c.res.headers.get("Retry-After") ?? "1" },
      });
    }
    let text: string;
    try {
      text = await readBody(c.req.raw, MAX_BODY_BYTES);
    } catch (error) {
      if (!(error instanceof BodyError)) throw error;
      const code = error.status === 413
        ? "too_large"
        : error.status === 415
        ? "unsupported_encoding"
        : "invalid_request";
      throw new ApiError(error.status, code, { details: { message: error.message } });
    }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new ApiError(400, "invalid_request", {
        details: { message: "Cannot read the points as the body is not JSON" },
      });
    }
    const points = (body as { points?: unknown } | null)?.points;
    if (
      typeof body !== "object" || body === null || Array.isArray(body) || !Array.isArray(points)
    ) {
      throw new ApiError(400, "invalid_request", {
        details: {
          message: 'Cannot read the points as the body must be a JSON object with a "points" array',
        },
      });
    }
    if (points.length > MAX_POINTS) {
      throw new ApiError(413, "too_large", {
        details: {
          message:
            `Cannot store the points as a push holds at most ${MAX_POINTS}: current count is ${points.length}`,
        },
      });
    }
    return c.json(await deps.metrics.push(points));
  });

  app.post("/api/v2/write", requireAccess(deps, "ingest"), async (c) => {
    const influx = (status: 400 | 413 | 415 | 429, code: string, message: string) =>
      c.json({ code, message }, status);
    if (admit(deps, c) > 0) {
      return influx(
        429,
        "too many requests",
        "Cannot store the points as this key is over its push limit",
      );
    }
    const precision = c.req.query("precision") ?? "ns";
    if (!(precision in PRECISIONS)) {
      return influx(
        400,
        "invalid",
        `Cannot read the points as precision must be ns, us, ms or s: current value is ${
          JSON.stringify(precision.slice(0, 40))
        }`,
      );
    }
    let text: string;
    try {
      text = await readBody(c.req.raw, MAX_BODY_BYTES);
    } catch (error) {
      if (!(error instanceof BodyError)) throw error;
      return influx(
        error.status,
        error.status === 413 ? "request too large" : "invalid",
        error.message,
      );
    }
    const { points, errors } = linesToPoints(text, precision as Precision);
    if (points.length > MAX_POINTS) {
      return influx(
        413,
        "request too large",
        `Cannot store the points as a write holds at most ${MAX_POINTS}: current count is ${points.length}`,
      );
    }
    const result = await deps.metrics.push(points.map((p) => p.point));
    const bad = [
      ...errors,
      ...result.rejected.map((r) => ({ line: points[r.index].line, message: r.message })),
    ].sort((a, b) => a.line - b.line);
    if (bad.length === 0) return c.body(null, 204);
    return influx(
      400,
      "invalid",
      `line ${bad[0].line}: ${bad[0].message}` +
        (bad.length > 1
          ? ` (and ${bad.length - 1} more; the other lines are stored)`
          : " (the other lines are stored)"),
    );
  });

  app.get("/api/v1/metrics", requireAccess(deps, "read"), async (c) => {
    const series = (await listSeries(deps.kv)).map(({ id: _id, ...s }) => s);
    return c.json({ series });
  });

  app.get("/api/v1/metrics/query", requireAccess(deps, "read"), async (c) => {
    const issues: Issue[] = [];
    const params = new URL(c.req.url).searchParams;
    const labels: Record<string, string> = {};
    for (const [key, value] of params) {
      if (key.startsWith("label.")) labels[key.slice(6)] = value;
      else if (!QUERY_PARAMS.has(key)) {
        issues.push({ path: key.slice(0, 64), message: "is not a query parameter" });
      } else if (params.getAll(key).length > 1) {
        issues.push({ path: key, message: "must be given once" });
      }
    }
    const name = params.get("name");
    if (name === null) issues.push({ path: "name", message: "is required" });
    else if (!isMetricName(name)) {
      issues.push({
        path: "name",
        message: "must be 1 to 128 of A-Z a-z 0-9 _ . : -, starting with a letter or _",
      });
    }
    const problem = labelsProblem(labels);
    if (problem) issues.push({ path: "label", message: problem });
    const step = (params.get("step") ?? "1m") as Step;
    if (!STEP_NAMES.includes(step)) {
      issues.push({ path: "step", message: `must be one of ${STEP_NAMES.join(", ")}` });
    }
    const to = epochParam(params.get("to") ?? undefined, "to", issues) ?? Date.now();
    const from = epochParam(params.get("from") ?? undefined, "from", issues) ?? to - 3_600_000;
    if (from > to) issues.push({ path: "from", message: "must not be after to" });
    if (issues.length === 0) {
      const { count } = bucketSpan(from, to, step);
      if (count > MAX_BUCKETS) {
        issues.push({
          path: "step",
          message:
            `the range holds ${count} buckets of ${step}, more than ${MAX_BUCKETS}: widen the step or narrow the range`,
        });
      }
    }
    if (issues.length > 0) throw invalid(issues);
    const result = await queryMetric(deps.kv, { name: name!, labels, from, to, step }, {
      retentionDays: deps.metrics.retentionDays,
    });
    if (result === null) {
      throw new ApiError(404, "not_found", {
        details: { message: `Cannot query as no metric is named ${name}` },
      });
    }
    return c.json(result);
  });

  app.get("/metrics", requireAccess(deps, "scrape"), async (c) => {
    return c.body(await exposition(deps.kv), 200, { "Content-Type": PROMETHEUS_CONTENT_TYPE });
  });

  return app;
}
