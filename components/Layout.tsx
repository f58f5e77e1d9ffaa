import type { ComponentChildren } from "preact";
import type { Assets } from "../shared/assets.ts";
import { Island } from "./Island.tsx";
import ConnectionBadge from "../islands/ConnectionBadge.tsx";

const NAV = [
  { href: "/admin", label: "Overview" },
  { href: "/admin/attempts", label: "Attempts" },
  { href: "/admin/metrics", label: "Metrics" },
  // Admins only: a viewer is not shown a page that would answer 403.
  { href: "/admin/keys", label: "API keys", adminOnly: true },
  { href: "/admin/debug", label: "Socket tester" },
  { href: "/admin/connections", label: "Connections", adminOnly: true },
];

/**
 * The page frame every HTML page shares. With a `user` it is a dashboard
 * page: navigation, the connection badge and sign-out, and the live socket.
 */
export function Layout(props: {
  title: string;
  assets: Assets;
  user?: { name: string; role: string };
  path?: string;
  children: ComponentChildren;
}) {
  const { user, assets } = props;
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="color-scheme" content="light dark" />
        <title>{`${props.title} · Lookout`}</title>
        <link rel="icon" href="/static/favicon.svg" type="image/svg+xml" />
        <link rel="stylesheet" href={assets.css} />
        {user && assets.js && <script type="module" src={assets.js} />}
      </head>
      <body data-live={user ? "true" : undefined}>
        {user && (
          <header class="bar">
            <a class="brand" href="/admin">Lookout</a>
            <nav aria-label="Main">
              {NAV.filter((item) => !item.adminOnly || user.role === "admin").map((item) => (
                <a
                  key={item.href}
                  href={item.href}
                  aria-current={item.href === props.path ? "page" : undefined}
                >
                  {item.label}
                </a>
              ))}
            </nav>
            <Island name="ConnectionBadge" component={ConnectionBadge} props={{}} />
            <span class="who">
              {user.name} <small>({user.role})</small>
            </span>
            <form method="post" action="/auth/logout">
              <button type="submit" class="link">Sign out</button>
            </form>
          </header>
        )}
        {props.children}
      </body>
    </html>
  );
}
