import { Hono } from "hono";
import { AdminPage } from "../components/AdminPage.tsx";
import { renderPage } from "../lib/html.ts";
import { requestSession } from "../lib/session_cookie.ts";
import type { SessionTimeouts } from "../lib/sessions.ts";

/** What the admin pages need. */
export interface AdminDeps {
  kv: Deno.Kv;
  config: { trustProxy: boolean };
  sessions: SessionTimeouts;
}

/** `GET /admin`: the dashboard with a live session, else a redirect to `/login`. */
export function adminRoutes(deps: AdminDeps): Hono {
  const app = new Hono();
  app.get("/admin", async (c) => {
    const session = await requestSession(c, deps.kv, {
      trustProxy: deps.config.trustProxy,
      timeouts: deps.sessions,
    });
    c.header("Cache-Control", "no-store");
    if (!session) return c.redirect("/login", 302);
    return c.html(renderPage(<AdminPage user={{ name: session.user, role: session.role }} />));
  });
  return app;
}
