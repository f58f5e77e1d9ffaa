import type { ComponentChildren } from "preact";

/** The page frame every HTML page shares. */
export function Layout(props: { title: string; children: ComponentChildren }) {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="color-scheme" content="light dark" />
        <title>{`${props.title} · Lookout`}</title>
        <link rel="stylesheet" href="/static/app.css" />
      </head>
      <body>{props.children}</body>
    </html>
  );
}
