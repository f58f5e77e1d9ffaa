import { Hono } from "hono";
import { healthKey } from "../lib/store/keys.ts";

/** `GET /healthz`: 200 when KV answers within a second, 503 otherwise. */
export function healthRoutes(kv: Deno.Kv): Hono {
  return new Hono().get("/healthz", async (c) => {
    c.header("Cache-Control", "no-store");
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("KV did not answer in 1 s")), 1000);
    });
    try {
      await Promise.race([kv.get(healthKey()), timeout]);
      return c.json({ status: "ok" });
    } catch {
      return c.json({ status: "unavailable" }, 503);
    } finally {
      clearTimeout(timer);
    }
  });
}
