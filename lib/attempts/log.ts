import { newId } from "../store/ids.ts";
import type { Attempt } from "../../shared/protocol.ts";
import {
  attemptBucketKey,
  attemptCountKey,
  attemptIndexKey,
  attemptKey,
  statsVersionKey,
} from "../store/keys.ts";

/** What the caller knows about an attempt; id and time are added on record. */
export type AttemptInput = Omit<Attempt, "id" | "at"> & { at?: number };

/** An attempt as stored: the record plus the time it stops being served. */
export type StoredAttempt = Attempt & { expiresAt: number };

/** Longest text kept from a client-controlled field. */
export const MAX_FIELD_CHARS = 1024;
/** Longest user name kept (it is also an index key, which KV caps at 2 KiB). */
export const MAX_USER_CHARS = 256;
/** Attempts per atomic commit: each one is up to six mutations, KV allows 1000. */
const MAX_BATCH = 64;

/** Cuts client-controlled text to `max` UTF-16 units without splitting a pair. */
export function cutText(
  value: string | null | undefined,
  max = MAX_FIELD_CHARS,
): string | null {
  if (value === null || value === undefined) return null;
  const text = String(value);
  if (text.length <= max) return text;
  const cut = text.slice(0, max);
  const last = cut.charCodeAt(cut.length - 1);
  return last >= 0xd800 && last <= 0xdbff ? cut.slice(0, -1) : cut;
}

const BUCKET_10S = 10_000;
const BUCKET_1M = 60_000;

interface Pending {
  attempt: Attempt;
  resolve: (attempt: Attempt) => void;
  reject: (error: unknown) => void;
}

/**
 * The durable attempt log. {@linkcode AttemptLog.record} resolves only once
 * the record, its indexes and the counters are committed in one atomic write.
 * Records that arrive while a commit is in flight are grouped into the next
 * commit, so a burst costs a few KV round trips, not one per attempt.
 */
export class AttemptLog {
  #kv: Deno.Kv;
  #retentionMs: number;
  #queue: Pending[] = [];
  #running: Promise<void> | null = null;
  /** The batch being committed; see {@linkcode settled}. */
  #batch: Promise<void> | null = null;
  #listeners: ((attempts: Attempt[], versionstamp: string) => void)[] = [];

  constructor(kv: Deno.Kv, options: { retentionDays: number }) {
    this.#kv = kv;
    this.#retentionMs = options.retentionDays * 86_400_000;
  }

  /**
   * Calls `listener` with each batch of attempts once it is durable, and the
   * versionstamp of the commit that wrote it.
   */
  onRecorded(listener: (attempts: Attempt[], versionstamp: string) => void): void {
    this.#listeners.push(listener);
  }

  /** Records one attempt; resolves with the stored record once it is durable. */
  record(input: AttemptInput): Promise<Attempt> {
    const at = input.at ?? Date.now();
    const attempt: Attempt = {
      // A ULID of the attempt's own time, so id ranges and `at` filters agree.
      id: newId(at),
      at,
      ip: cutText(input.ip) ?? "unknown",
      user: cutText(input.user, MAX_USER_CHARS),
      outcome: input.outcome,
      reason: input.reason,
      transport: input.transport,
      origin: cutText(input.origin),
      userAgent: cutText(input.userAgent),
      tokenId: cutText(input.tokenId),
      durationMs: Math.round(input.durationMs * 100) / 100,
    };
    return new Promise((resolve, reject) => {
      this.#queue.push({ attempt, resolve, reject });
      this.#running ??= this.#drain();
    });
  }

  /** Resolves when every attempt handed to {@linkcode record} is settled. */
  async flush(): Promise<void> {
    while (this.#running) await this.#running;
  }

  /**
   * Resolves once the commit in flight now, if any, is settled and its
   * listeners have run; unlike {@linkcode flush} it does not wait for
   * attempts queued after it.
   */
  settled(): Promise<void> {
    return this.#batch ?? Promise.resolve();
  }

  async #drain(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        const batch = this.#queue.splice(0, MAX_BATCH);
        const attempts = batch.map((p) => p.attempt);
        const settled = Promise.withResolvers<void>();
        this.#batch = settled.promise;
        let versionstamp: string | null = null;
        try {
          versionstamp = await commitAttempts(this.#kv, attempts, this.#retentionMs);
        } catch (error) {
          for (const p of batch) p.reject(error);
        }
        try {
          if (versionstamp !== null) {
            for (const p of batch) p.resolve(p.attempt);
            for (const listener of this.#listeners) listener(attempts, versionstamp);
          }
        } finally {
          this.#batch = null;
          settled.resolve();
        }
      }
    } finally {
      this.#running = null;
    }
  }
}

/**
 * Writes attempts, their indexes and the counters in one atomic commit;
 * resolves with the commit's versionstamp.
 */
export async function commitAttempts(
  kv: Deno.Kv,
  attempts: Attempt[],
  retentionMs: number,
): Promise<string> {
  const op = kv.atomic();
  const sums = new Map<string, { key: Deno.KvKey; n: bigint }>();
  const add = (key: Deno.KvKey) => {
    const id = JSON.stringify(key);
    const entry = sums.get(id);
    if (entry) entry.n++;
    else sums.set(id, { key, n: 1n });
  };
  const now = Date.now();
  for (const attempt of attempts) {
    // Counted from the attempt's own time, like the stored expiresAt.
    const expireIn = Math.max(1000, attempt.at + retentionMs - now);
    const stored: StoredAttempt = {
      ...attempt,
      expiresAt: attempt.at + retentionMs,
    };
    op.set(attemptKey(attempt.id), stored, { expireIn });
    op.set(attemptIndexKey("outcome", attempt.outcome, attempt.id), attempt.id, {
      expireIn,
    });
    op.set(attemptIndexKey("reason", attempt.reason, attempt.id), attempt.id, {
      expireIn,
    });
    op.set(attemptIndexKey("ip", attempt.ip, attempt.id), attempt.id, {
      expireIn,
    });
    if (attempt.user !== null) {
      op.set(attemptIndexKey("user", attempt.user, attempt.id), attempt.id, {
        expireIn,
      });
    }
    add(attemptCountKey("total"));
    add(attemptCountKey("outcome", attempt.outcome));
    if (attempt.outcome === "failure") {
      add(attemptCountKey("reason", attempt.reason));
    }
    add(attemptBucketKey("10s", floor(attempt.at, BUCKET_10S), attempt.outcome));
    add(attemptBucketKey("1m", floor(attempt.at, BUCKET_1M), attempt.outcome));
  }
  for (const { key, n } of sums.values()) op.sum(key, n);
  op.sum(statsVersionKey(), 1n);
  const result = await op.commit();
  if (!result.ok) throw new Error("Cannot record attempts: the commit failed");
  return result.versionstamp;
}

function floor(ms: number, size: number): number {
  return ms - (ms % size);
}
