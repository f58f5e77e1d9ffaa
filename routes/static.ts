import { Hono } from "hono";

const TYPES: Record<string, string> = {
  css: "text/css; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  svg: "image/svg+xml",
  png: "image/png",
  ico: "image/x-icon",
};

/**
 * `GET /static/:name` and `GET /static/build/:name`: files of `static/`,
 * read once and kept in memory. Built files are named by their content, so
 * they are cached for a year; the rest for an hour.
 */
export function staticRoutes(dir = new URL("../static/", import.meta.url)): Hono {
  const app = new Hono();
  const cache = new Map<string, Uint8Array>();
  const serve = (path: string, cacheControl: string) => async (c: import("hono").Context) => {
    const name = c.req.param("name") ?? "";
    const type = TYPES[name.split(".").pop() ?? ""];
    if (!type || name.startsWith(".")) return c.notFound();
    const file = path + name;
    let body = cache.get(file);
    if (!body) {
      try {
        body = await Deno.readFile(new URL(file, dir));
      } catch {
        return c.notFound();
      }
      cache.set(file, body);
    }
    return c.body(body as Uint8Array<ArrayBuffer>, 200, {
      "Content-Type": type,
      "Cache-Control": cacheControl,
    });
  };
  app.get(
    "/static/build/:name{[A-Za-z0-9_.-]+}",
    serve("build/", "public, max-age=31536000, immutable"),
  );
  app.get("/static/:name{[A-Za-z0-9_.-]+}", serve("", "public, max-age=3600"));
  return app;
}
