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
  return await retryLocked(() => Deno.openKv(path));
}

/**
 * Runs a KV operation again when the local SQLite file is busy. Two handles
 * on one file (two processes, or two instances in a test) can make a commit
 * throw "database is locked" instead of waiting; Deno gives that error no
 * code, so its message is the only sign. Other errors pass straight through.
 */
export async function retryLocked<T>(op: () => Promise<T>, attempts = 8): Promise<T> {
  for (let i = 1;; i++) {
    try {
      return await op();
    } catch (error) {
      if (i >= attempts || !String((error as Error)?.message).includes("database is locked")) {
        throw error;
      }
      await new Promise((r) => setTimeout(r, Math.random() * 10 * 2 ** i));
    }
  }
}

/**
 * Wraps a KV handle so that every read, write and atomic commit is retried
 * when the local file is busy ({@linkcode retryLocked}). Several workers of
 * one process each hold a handle on the same file; without this, whichever
 * loses a race fails its request. Listing is passed through as it is.
 */
export function retryingKv(kv: Deno.Kv): Deno.Kv {
  return new Proxy(kv, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (prop === "atomic") return () => retryingAtomic(target.atomic());
      if (prop === "get" || prop === "getMany" || prop === "set" || prop === "delete") {
        return (...args: unknown[]) => retryLocked(() => value.apply(target, args));
      }
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

function retryingAtomic(op: Deno.AtomicOperation): Deno.AtomicOperation {
  const proxy: Deno.AtomicOperation = new Proxy(op, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (prop === "commit") return () => retryLocked(() => target.commit());
      if (typeof value !== "function") return value;
      // Builder methods return the operation itself: keep handing out the proxy.
      return (...args: unknown[]) => {
        const result = value.apply(target, args);
        return result === target ? proxy : result;
      };
    },
  });
  return proxy;
}
