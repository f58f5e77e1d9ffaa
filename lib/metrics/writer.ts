/**
 * Commits rollups to KV, grouping the requests that arrive while a commit is
 * in flight into the next one: a burst of pushes costs a few commits, not
 * one per push. Each push resolves only once its writes are durable.
 */
import { getAll } from "./series.ts";
import { type FoldedWrite, isLater, type LastValue, type LastWrite, Rollup } from "./rollup.ts";
import { appendEvent } from "../realtime/feed.ts";

/** KV allows 1,000 mutations and 100 checks per commit; stay under both. */
const MAX_MUTATIONS = 900;
const MAX_CHECKS = 90;

interface Pending {
  rollup: Rollup;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/** A changed `10s` bucket: series id and bucket start (epoch ms). */
export type ChangedBucket = [id: string, t: number];

/** Who hears of committed changes (CONTRACT 7.4). */
export interface ChangeAnnouncer {
  /** This instance, as the `origin` of the feed event that tells the others. */
  origin: string;
  /** Called with this instance's own changes once they are committed. */
  committed: (buckets: ChangedBucket[]) => void;
}

/** Groups and commits rollups; see the module doc. */
export class RollupWriter {
  #kv: Deno.Kv;
  #retentionDays: number;
  #queue: Pending[] = [];
  #running: Promise<void> | null = null;

  #announce: ChangeAnnouncer | undefined;

  constructor(kv: Deno.Kv, options: { retentionDays: number; announce?: ChangeAnnouncer }) {
    this.#kv = kv;
    this.#retentionDays = options.retentionDays;
    this.#announce = options.announce;
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
          await commitRollup(this.#kv, merged, this.#announce);
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
 * With `announce`, each commit also appends a `metrics` feed event naming
 * its changed `10s` buckets, so the other instances learn of them with the
 * data (or not at all); at most 450 buckets a chunk keep it far under KV's
 * 64 KiB a value.
 */
export async function commitRollup(
  kv: Deno.Kv,
  rollup: Rollup,
  announce?: ChangeAnnouncer,
): Promise<void> {
  const { folded, lasts } = rollup.writes();
  while (folded.length > 0 || lasts.length > 0) {
    const chunkLasts = lasts.splice(0, MAX_CHECKS);
    const chunkFolded = folded.splice(0, MAX_MUTATIONS - chunkLasts.length);
    const buckets = announce ? changedBuckets([...chunkFolded, ...chunkLasts]) : [];
    await commitChunk(kv, chunkFolded, chunkLasts, (op) => {
      if (buckets.length > 0) appendEvent(op, "metrics", { buckets }, announce!.origin);
    });
    if (buckets.length > 0) announce!.committed(buckets);
  }
}

/** The `10s` buckets among written keys, each once. */
function changedBuckets(entries: { key: Deno.KvKey }[]): ChangedBucket[] {
  const seen = new Map<string, ChangedBucket>();
  for (const { key } of entries) {
    if (key[0] !== "metric_buckets_10s") continue;
    const [id, t] = [key[1] as string, key[2] as number];
    seen.set(`${id}:${t}`, [id, t]);
  }
  return [...seen.values()];
}

async function commitChunk(
  kv: Deno.Kv,
  folded: FoldedWrite[],
  lasts: LastWrite[],
  extra: (op: Deno.AtomicOperation) => void,
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
    extra(op);
    if ((await op.commit()).ok) return;
    // Another writer set a `last` in between: read the lasts again and retry.
    await new Promise((r) => setTimeout(r, Math.random() * Math.min(50, 2 ** attempt)));
  }
}
