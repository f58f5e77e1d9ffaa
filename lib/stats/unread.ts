/**
 * Attempts this instance committed that the last stats read does not hold
 * yet, so its own sockets see them before the next read.
 */
import type { Attempt, Stats } from "../../shared/protocol.ts";

/** Counts of attempts by outcome and failure reason. */
export interface Counts {
  success: number;
  failure: number;
  byReason: Record<string, number>;
}

/**
 * Attempts this instance committed that the last stats read does not hold,
 * by commit. A read that started from stats version V holds every commit up
 * to V, so those batches drop out when it lands; `total` is kept as batches
 * come and go, so reading it costs nothing per connect.
 */
export class Unread {
  readonly total: Counts = { success: 0, failure: 0, byReason: {} };
  /** In commit order: this instance commits one batch at a time. */
  #batches: { versionstamp: string; counts: Counts }[] = [];

  /** A batch committed at `versionstamp`. */
  add(versionstamp: string, attempts: Attempt[]): void {
    const counts: Counts = { success: 0, failure: 0, byReason: {} };
    for (const a of attempts) {
      if (a.outcome === "success") counts.success++;
      else {
        counts.failure++;
        counts.byReason[a.reason] = (counts.byReason[a.reason] ?? 0) + 1;
      }
    }
    this.#batches.push({ versionstamp, counts });
    this.#apply(counts, 1);
  }

  /** Drops the batches a read from stats version `versionstamp` holds. */
  readUpTo(versionstamp: string): void {
    let n = 0;
    while (n < this.#batches.length && this.#batches[n].versionstamp <= versionstamp) {
      this.#apply(this.#batches[n].counts, -1);
      n++;
    }
    if (n > 0) this.#batches.splice(0, n);
  }

  #apply(counts: Counts, sign: 1 | -1): void {
    const t = this.total;
    t.success += sign * counts.success;
    t.failure += sign * counts.failure;
    for (const [reason, n] of Object.entries(counts.byReason)) {
      const left = (t.byReason[reason] ?? 0) + sign * n;
      if (left === 0) delete t.byReason[reason];
      else t.byReason[reason] = left;
    }
  }
}

/**
 * `stats` with attempts it has not read yet added to its counters; without
 * this the first `stats_update` after `authenticated` would miss the very
 * attempt that authenticated.
 */
export function withUnread(stats: Stats, unread: Counts): Stats {
  if (unread.success === 0 && unread.failure === 0) return stats;
  const a = stats.attempts;
  const byReason = { ...a.byReason };
  for (const [reason, n] of Object.entries(unread.byReason)) {
    byReason[reason] = (byReason[reason] ?? 0) + n;
  }
  return {
    ...stats,
    attempts: {
      total: a.total + unread.success + unread.failure,
      success: a.success + unread.success,
      failure: a.failure + unread.failure,
      byReason,
      lastMinute: {
        success: a.lastMinute.success + unread.success,
        failure: a.lastMinute.failure + unread.failure,
      },
    },
  };
}
