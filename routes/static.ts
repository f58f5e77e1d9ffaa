import { Hono } from "hono";

const TYPES: Record<string, string> = {
  css: "text/css; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  svg: "image/svg+xml",
  png: "image/png",
  ico: "image/x-icon",
};

/** `GET /static/:name`: files of `static/`, read once and kept in memory. */
export function staticRoutes(dir = new URL("../static/", import.meta.url)): Hono {
  const app = new Hono();
  const cache = new Map<string, Uint8Array>();
  app.get("/static/:name{[A-Za-z0-9_.-]+}", async (c) => {
    const name = c.req.param("name");
    const type = TYPES[name.split(".").pop() ?? ""];
    if (!type || name.startsWith(".")) return c.notFound();
    let body = cache.get(name);
    if (!body) {
      try {
        body = await Deno.readFile(new URL(name, dir));
      } catch {
        return c.notFound();
      }
      cache.set(name, body);
    }
    return c.body(body as Uint8Array<ArrayBuffer>, 200, {
      "Content-Type": type,
      "Cache-Control": "public, max-age=3600",
    });
  });
  return app;
}
