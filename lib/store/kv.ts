import { dirname } from "node:path";

/**
 * Opens Deno KV: the local file at `path` (its folder is created when
 * missing), `:memory:`, a remote database's `https://` connect URL, or, when
 * `path` is undefined, the platform's own KV (Deno Deploy).
 */
export async function openKv(path: string | undefined): Promise<Deno.Kv> {
  if (path === undefined) return await Deno.openKv();
  if (path !== ":memory:" && !/^https?:\/\//.test(path)) {
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
export async function retryLocked<T>(op: () => Promise<T>, attempts = 16): Promise<T> {
  for (let i = 1;; i++) {
    try {
      return await op();
    } catch (error) {
      if (i >= attempts || !String((error as Error)?.message).includes("database is locked")) {
        throw error;
      }
      // Locks are held for milliseconds: short, jittered waits, at most about 0.6 s in all.
      await new Promise((r) => setTimeout(r, Math.random() * Math.min(64, 2 ** i)));
    }
  }
}

/**
 * The store failed (unreachable, closed, or still busy after retries).
 * Requests answer 503 and sockets close 1011: Lookout fails closed.
 */
export class StoreUnavailable extends Error {
  constructor(action: string, cause: unknown) {
    super(
      `Cannot ${action} as the KV store is unavailable: ${(cause as Error)?.message ?? cause}`,
      {
        cause,
      },
    );
    this.name = "StoreUnavailable";
  }
}

async function guarded<T>(action: string, op: () => Promise<T>): Promise<T> {
  try {
    return await retryLocked(op);
  } catch (error) {
    // A programming error (a bad key, a value too large) is not an outage.
    if (error instanceof TypeError && !/locked|closed|unavailable/i.test(error.message)) {
      throw error;
    }
    throw error instanceof StoreUnavailable ? error : new StoreUnavailable(action, error);
  }
}

/**
 * Wraps a KV handle for the app: every read, write, listing and atomic
 * commit is retried while the local file is busy ({@linkcode retryLocked}),
 * since several workers of one process each hold a handle on it, and a
 * failure that remains is a {@linkcode StoreUnavailable}.
 */
export function retryingKv(kv: Deno.Kv): Deno.Kv {
  return new Proxy(kv, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (prop === "atomic") return () => retryingAtomic(target.atomic());
      if (prop === "get" || prop === "getMany" || prop === "set" || prop === "delete") {
        return (...args: unknown[]) => guarded(`${prop} in KV`, () => value.apply(target, args));
      }
      if (prop === "list") {
        return (...args: Parameters<Deno.Kv["list"]>) => guardedList(() => target.list(...args));
      }
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/** A listing opened on its first read, so that opening it fails like reading it. */
function guardedList<T>(open: () => Deno.KvListIterator<T>): Deno.KvListIterator<T> {
  let iter: Deno.KvListIterator<T> | null = null;
  const next = () => guarded("list KV", () => (iter ??= open()).next());
  const lazy = {
    next,
    get cursor() {
      return iter?.cursor ?? "";
    },
    [Symbol.asyncIterator]() {
      return lazy;
    },
  };
  return lazy as unknown as Deno.KvListIterator<T>;
}

function retryingAtomic(op: Deno.AtomicOperation): Deno.AtomicOperation {
  const proxy: Deno.AtomicOperation = new Proxy(op, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (prop === "commit") return () => guarded("commit to KV", () => target.commit());
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
