import { Hono } from "hono";
import { type DashboardEnv, dashboardPages } from "./dashboard_page.tsx";
import { z } from "zod";
import { Island } from "../components/Island.tsx";
import AttemptFeed from "../islands/AttemptFeed.tsx";
import AttemptsExplorer from "../islands/AttemptsExplorer.tsx";
import Charts from "../islands/Charts.tsx";
import ConnectionsTable from "../islands/ConnectionsTable.tsx";
import DebugConsole from "../islands/DebugConsole.tsx";
import LiveStats from "../islands/LiveStats.tsx";
import { AttemptQuery, listAttempts } from "../lib/attempts/query.ts";
import type { Assets } from "../lib/http/assets.ts";
import {
  apiQuery,
  type ExplorerFilters,
  type WindowName,
  WINDOWS,
} from "../shared/explorer_params.ts";
import { FEED_SIZE } from "../client/store.ts";
import { fromFirstData, readHistory } from "../lib/stats/history.ts";
import type { DeploymentStats } from "../lib/stats/deployment.ts";
import { FAILURE_REASONS } from "../shared/protocol.ts";
import type { ConnectionRecords } from "../lib/realtime/connections.ts";
import { TRANSPORTS } from "../shared/attempt_filters.ts";
import type { SessionTimeouts } from "../lib/auth/sessions.ts";

/** What the admin pages need. */
export interface AdminDeps {
  kv: Deno.Kv;
  stats: DeploymentStats;
  assets: Assets;
  config: { trustProxy: boolean };
  sessions: SessionTimeouts;
  connections: ConnectionRecords;
}

type Env = DashboardEnv;

/** The explorer's filters from the page URL; a bad value falls back, it never fails the page. */
const Filters = z.object({
  outcome: z.enum(["success", "failure"]).optional().catch(undefined),
  reason: z.enum(["ok", ...FAILURE_REASONS]).optional().catch(undefined),
  ip: z.string().trim().min(1).max(1024).optional().catch(undefined),
  user: z.string().trim().min(1).max(256).optional().catch(undefined),
  origin: z.string().trim().min(1).max(1024).optional().catch(undefined),
  transport: z.enum(TRANSPORTS).optional().catch(undefined),
  window: z.enum(Object.keys(WINDOWS) as [WindowName, ...WindowName[]]).default("24h")
    .catch("24h"),
  cursor: z.string().regex(/^[0-9A-HJKMNP-TV-Z]{26}$/).optional().catch(undefined),
});

/**
 * `/admin`, `/admin/attempts`, `/admin/debug`, `/admin/connections` (admins
 * only): with a live session, else to `/login`.
 */
export function adminRoutes(deps: AdminDeps): Hono<Env> {
  const app = new Hono<Env>();

  const { session, page } = dashboardPages(deps);

  app.get("/admin", session, async (c) => {
    const [stats, history, recent] = await Promise.all([
      deps.stats.current(),
      readHistory(deps.kv, { minutes: 60 }),
      // As many as the live feed keeps, so the rendered rows are its first state.
      listAttempts(deps.kv, { limit: FEED_SIZE }),
    ]);
    return page(
      c,
      "Overview",
      "/admin",
      <>
        <h1>Overview</h1>
        <Island name="LiveStats" component={LiveStats} props={{ initial: stats }} />
        <Island name="Charts" component={Charts} props={{ history: fromFirstData(history) }} />
        <Island name="AttemptFeed" component={AttemptFeed} props={{ initial: recent.items }} />
      </>,
    );
  });

  app.get("/admin/attempts", session, async (c) => {
    const filters: ExplorerFilters = Filters.parse(c.req.query());
    const query = AttemptQuery.parse(Object.fromEntries(apiQuery(filters)));
    const result = await listAttempts(deps.kv, query);
    return page(
      c,
      "Attempts",
      "/admin/attempts",
      <>
        <h1>Attempts</h1>
        <Island
          name="AttemptsExplorer"
          component={AttemptsExplorer}
          props={{ filters, page: result, reasons: ["ok", ...FAILURE_REASONS] }}
        />
      </>,
    );
  });

  app.get("/admin/connections", session, async (c) => {
    if (c.get("session").role !== "admin") {
      return page(
        c,
        "Forbidden",
        "/admin/connections",
        <>
          <h1>Forbidden</h1>
          <p>Only an admin can see and end the live connections.</p>
        </>,
        403,
      );
    }
    return page(
      c,
      "Connections",
      "/admin/connections",
      <>
        <h1>Connections</h1>
        <Island
          name="ConnectionsTable"
          component={ConnectionsTable}
          props={{ initial: await deps.connections.list() }}
        />
      </>,
    );
  });

  app.get("/admin/debug", session, (c) =>
    page(
      c,
      "Socket tester",
      "/admin/debug",
      <>
        <h1>Socket tester</h1>
        <p class="muted">
          Connect to{" "}
          <code>/admin/ws</code>, send raw messages and watch every frame. Close codes are explained
          as they happen.
        </p>
        <Island name="DebugConsole" component={DebugConsole} props={{}} />
      </>,
    ));

  return app;
}
