import { dirname } from "node:path";

/**
 * Opens Deno KV: the local file at `path` (its folder is created when
 * missing), `:memory:`, or, when `path` is undefined, the platform's own KV
 * (Deno Deploy).
 */
export async function openKv(path: string | undefined): Promise<Deno.Kv> {
  if (path === undefined) return await Deno.openKv();
  if (path !== ":memory:") {
    await Deno.mkdir(dirname(path), { recursive: true });
  }
  return await Deno.openKv(path);
}
