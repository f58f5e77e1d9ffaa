/**
 * Commits rollups to KV, grouping the requests that arrive while a commit is
 * in flight into the next one: a burst of pushes costs a few commits, not
 * one per push. Each push resolves only once its writes are durable.
 */
import { getAll } from "./series.ts";
import { type FoldedWrite, isLater, type LastValue, type LastWrite, Rollup } from "./rollup.ts";

/** KV allows 1,000 mutations and 100 checks per commit; stay under both. */
const MAX_MUTATIONS = 900;
const MAX_CHECKS = 90;

interface Pending {
  rollup: Rollup;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/** Groups and commits rollups; see the module doc. */
export class RollupWriter {
  #kv: Deno.Kv;
  #retentionDays: number;
  #queue: Pending[] = [];
  #running: Promise<void> | null = null;

  constructor(kv: Deno.Kv, options: { retentionDays: number }) {
    this.#kv = kv;
    this.#retentionDays = options.retentionDays;
  }

  /** Resolves once `rollup` is committed (with whatever was queued beside it). */
  write(rollup: Rollup): Promise<void> {
    if (rollup.size === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.#queue.push({ rollup, resolve, reject });
      this.#running ??= this.#drain();
    });
  }

  /** Resolves when every queued rollup is settled. */
  async flush(): Promise<void> {
    while (this.#running) await this.#running;
  }

  async #drain(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        const batch = this.#queue.splice(0);
        let merged = batch[0].rollup;
        if (batch.length > 1) {
          merged = new Rollup(this.#retentionDays);
          for (const p of batch) merged.merge(p.rollup);
        }
        try {
          await commitRollup(this.#kv, merged);
          for (const p of batch) p.resolve();
        } catch (error) {
          for (const p of batch) p.reject(error);
        }
      }
    } finally {
      this.#running = null;
    }
  }
}

/**
 * Writes a rollup: the folded sums, minimums and maximums as they are (they
 * commute), and each `last` only when it is later than the stored one,
 * under a check of that entry, retried until no other writer got in
 * between. One commit when it fits, else chunks of at most 900 mutations.
 */
export async function commitRollup(kv: Deno.Kv, rollup: Rollup): Promise<void> {
  const { folded, lasts } = rollup.writes();
  while (folded.length > 0 || lasts.length > 0) {
    const chunkLasts = lasts.splice(0, MAX_CHECKS);
    const chunkFolded = folded.splice(0, MAX_MUTATIONS - chunkLasts.length);
    await commitChunk(kv, chunkFolded, chunkLasts);
  }
}

async function commitChunk(
  kv: Deno.Kv,
  folded: FoldedWrite[],
  lasts: LastWrite[],
): Promise<void> {
  for (let attempt = 0;; attempt++) {
    const stored = await getAll<LastValue>(kv, lasts.map((l) => l.key));
    const op = kv.atomic();
    for (const f of folded) op.mutate({ type: f.op, key: f.key, value: new Deno.KvU64(f.value) });
    const now = Date.now();
    lasts.forEach((l, i) => {
      const current = stored[i];
      if (current.value !== null && !isLater(l.last, current.value)) return;
      op.check(current);
      op.set(
        l.key,
        l.last,
        l.expireAt === null ? undefined : { expireIn: Math.max(1000, l.expireAt - now) },
      );
    });
    if ((await op.commit()).ok) return;
    // Another writer set a `last` in between: read the lasts again and retry.
    await new Promise((r) => setTimeout(r, Math.random() * Math.min(50, 2 ** attempt)));
  }
}
