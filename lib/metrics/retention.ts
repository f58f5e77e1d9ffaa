/**
 * Deletes rollup buckets past their retention. Bucket sums carry no
 * `expireIn` (KV sets it only on `set`), so without this they would stay;
 * reads already leave expired buckets out, this only frees the space.
 */
import { metricBucketsPrefix, metricSeriesPrefix } from "../store/keys.ts";
import { retentionMs, STEP_NAMES, STEPS } from "./rollup.ts";
import type { SeriesRecord } from "./series.ts";

/** Extra age before a bucket is deleted, so instances' clock skew cannot race a write. */
const MARGIN_MS = 10 * 60_000;

/** Deletes every bucket whose retention ended before `now`; returns how many keys went. */
export async function sweepExpiredBuckets(
  kv: Deno.Kv,
  retentionDays: number,
  now = Date.now(),
): Promise<number> {
  let deleted = 0;
  for await (const s of kv.list<SeriesRecord>({ prefix: metricSeriesPrefix() })) {
    for (const step of STEP_NAMES) {
      const prefix = metricBucketsPrefix(step, s.value.id);
      const cutoff = now - retentionMs(step, retentionDays) - STEPS[step] - MARGIN_MS;
      let op = kv.atomic();
      let n = 0;
      for await (const e of kv.list({ start: [...prefix, 0], end: [...prefix, cutoff] })) {
        op.delete(e.key);
        if (++n === 500) {
          await op.commit();
          deleted += n;
          op = kv.atomic();
          n = 0;
        }
      }
      if (n > 0) {
        await op.commit();
        deleted += n;
      }
    }
  }
  return deleted;
}
