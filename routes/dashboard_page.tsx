/**
 * What every dashboard page shares: a live session (else a redirect to
 * `/login`) and the page frame. Used by the sub-apps of `routes/admin.tsx`
 * and `routes/admin_metrics.tsx`.
 */
import type { Context } from "hono";
import type { ComponentChildren } from "preact";
import { Layout } from "../components/Layout.tsx";
import type { Assets } from "../lib/http/assets.ts";
import { renderPage } from "../lib/http/html.ts";
import { requestSession } from "../lib/auth/session_cookie.ts";
import type { Session, SessionTimeouts } from "../lib/auth/sessions.ts";

/** The context of a dashboard page: its session is set. */
export type DashboardEnv = { Variables: { session: Session } };

/** What the dashboard pages need to find the session and draw the frame. */
export interface DashboardDeps {
  kv: Deno.Kv;
  assets: Assets;
  config: { trustProxy: boolean };
  sessions: SessionTimeouts;
}

/** The session middleware and the page renderer of the dashboard. */
export function dashboardPages(deps: DashboardDeps) {
  // Per page, not "/admin/*": that would catch the /admin/ws upgrade too.
  async function session(c: Context<DashboardEnv>, next: () => Promise<void>) {
    const found = await requestSession(c, deps.kv, {
      trustProxy: deps.config.trustProxy,
      timeouts: deps.sessions,
    });
    c.header("Cache-Control", "no-store");
    if (!found) return c.redirect("/login", 302);
    c.set("session", found);
    await next();
  }

  function page(
    c: Context<DashboardEnv>,
    title: string,
    path: string,
    body: ComponentChildren,
    status: 200 | 403 = 200,
  ) {
    const s = c.get("session");
    return c.html(
      renderPage(
        <Layout
          title={title}
          assets={deps.assets}
          user={{ name: s.user, role: s.role }}
          path={path}
        >
          <main>{body}</main>
        </Layout>,
      ),
      status,
    );
  }

  return { session, page };
}
