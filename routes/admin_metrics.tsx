import { Hono } from "hono";
import { type DashboardEnv, dashboardPages } from "./dashboard_page.tsx";
import { z } from "zod";
import { Island } from "../components/Island.tsx";
import KeysManager from "../islands/KeysManager.tsx";
import MetricsBoard from "../islands/MetricsBoard.tsx";
import type { Assets } from "../lib/http/assets.ts";
import { KEY_SCOPES, listApiKeys, MAX_KEY_NAME } from "../lib/api_keys/store.ts";
import { readBoard } from "../lib/metrics/board.ts";
import { ownOrigin } from "../lib/http/origin.ts";
import type { SessionTimeouts } from "../lib/auth/sessions.ts";
import {
  type BoardFilters,
  parseLabelFilter,
  RANGE_NAMES,
  type RangeName,
} from "../shared/metrics_board.ts";

/** What the metrics and keys pages need. */
export interface AdminMetricsDeps {
  kv: Deno.Kv;
  assets: Assets;
  config: { trustProxy: boolean; metricsRetentionDays: number };
  sessions: SessionTimeouts;
}

type Env = DashboardEnv;

/** The board's filters from the page URL; a bad value falls back, it never fails the page. */
const Filters = z.object({
  range: z.enum(RANGE_NAMES as [RangeName, ...RangeName[]]).default("1h").catch("1h"),
  name: z.string().trim().max(128).default("").catch(""),
  labels: z.string().max(1024).default("").catch("").transform(parseLabelFilter),
});

/** `/admin/metrics` (every signed-in user) and `/admin/keys` (admins), CONTRACT 7.5. */
export function adminMetricsRoutes(deps: AdminMetricsDeps): Hono<Env> {
  const app = new Hono<Env>();

  const { session, page } = dashboardPages(deps);

  app.get("/admin/metrics", session, async (c) => {
    const filters: BoardFilters = Filters.parse(c.req.query());
    const board = await readBoard(deps.kv, filters, {
      retentionDays: deps.config.metricsRetentionDays,
    });
    return page(
      c,
      "Metrics",
      "/admin/metrics",
      <>
        <h1>Metrics</h1>
        <Island
          name="MetricsBoard"
          component={MetricsBoard}
          props={{
            filters,
            panels: board.panels,
            total: board.total,
            now: Date.now(),
            origin: ownOrigin(c.req.raw, deps.config.trustProxy),
            admin: c.get("session").role === "admin",
          }}
        />
      </>,
    );
  });

  app.get("/admin/keys", session, async (c) => {
    if (c.get("session").role !== "admin") {
      return page(
        c,
        "API keys",
        "/admin/keys",
        <>
          <h1>API keys</h1>
          <p class="error" role="alert">
            Only an admin can see and manage API keys. Ask an admin for an <code>ingest</code>{" "}
            key to push metrics, or a <code>read</code> key to read them.
          </p>
        </>,
        403,
      );
    }
    return page(
      c,
      "API keys",
      "/admin/keys",
      <>
        <h1>API keys</h1>
        <p class="muted">
          Services push and read metrics with API keys. A key is shown once, when it is created;
          Lookout keeps only a hash of it.
        </p>
        <Island
          name="KeysManager"
          component={KeysManager}
          props={{
            initial: await listApiKeys(deps.kv),
            scopes: [...KEY_SCOPES],
            maxName: MAX_KEY_NAME,
          }}
        />
      </>,
    );
  });

  return app;
}
