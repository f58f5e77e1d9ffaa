/**
 * The bare KV ceiling of the ingest benchmark: no HTTP, no parsing, no
 * checks, only the KV commits that storing the batches' counter increments
 * takes, awaited before the sender's next batch, as Lookout must. Two modes:
 * `batch`, one commit per batch (split in chunks); `group`, the batches that
 * arrive while a commit is in flight are folded together into the next one
 * (group commit: the same keys, so eight batches cost about what one does).
 * It runs the same phases as the other targets (bench/metrics_load.ts), in
 * this process, with its settings as JSON in `BENCH_METRICS_BARE`, and prints
 * one JSON {@linkcode TargetResult} line.
 *
 * The writes are the ones Lookout's `lib/metrics/rollup.ts` makes for a
 * counter point, with Lookout's own key functions, steps and encoding,
 * folded per key: the series' totals `first_at`, `last_at`, `total` (min,
 * max, sum) and, per step, each bucket's `sum` and `count` (sums), as KvU64,
 * sums in fixed point, chunks of at most 900 mutations as
 * `lib/metrics/writer.ts` commits them. The series id is Lookout's
 * `seriesId()`, computed once per series: the ceiling leaves out what need
 * not be paid per point.
 */
import {
  metricBucketKey,
  metricBucketsPrefix,
  metricTotalKey,
  metricTotalsPrefix,
} from "../lib/store/keys.ts";
import { decodeFixed, encodeFixed } from "../lib/metrics/encoding.ts";
import { seriesId } from "../lib/metrics/points.ts";
import { STEP_NAMES, STEPS } from "../lib/metrics/rollup.ts";
import {
  type Batch,
  FIELD,
  type IngestTarget,
  type LoadShape,
  MEASUREMENT,
  measureTarget,
  seriesName,
} from "./metrics_load.ts";

/** lib/metrics/writer.ts's chunk size: KV allows 1,000 mutations a commit. */
const MAX_MUTATIONS = 900;

/** The settings the runner passes. */
export interface BareConfig {
  kvPath: string;
  shape: LoadShape;
  mode: "batch" | "group";
}

/** The ids of series 0 to `n - 1` of the benchmark (`ingest.v`, label `series`). */
async function seriesIds(n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    ids.push(await seriesId(`${MEASUREMENT}.${FIELD}`, { series: seriesName(i) }));
  }
  return ids;
}

/** KV writes folded per key: one mutation each, whatever the points behind it. */
type Folded = Map<string, { key: Deno.KvKey; type: "sum" | "min" | "max"; value: bigint }>;

function fold(folded: Folded, key: Deno.KvKey, type: "sum" | "min" | "max", value: bigint): void {
  const id = key.join("\u0000");
  const f = folded.get(id);
  if (!f) folded.set(id, { key, type, value });
  else if (type === "sum") f.value += value;
  else if (type === "min") f.value = value < f.value ? value : f.value;
  else f.value = value > f.value ? value : f.value;
}

/**
 * Folds one batch. Every point of a batch has the batch's time, so the
 * points are first summed per series in typed arrays: the folds are then per
 * series, not per point (Lookout's points may each have their own time).
 */
function addBatch(folded: Folded, ids: string[], batch: Batch): void {
  const counts = new Uint32Array(ids.length);
  const sums = new Float64Array(ids.length);
  for (let i = 0; i < batch.series.length; i++) {
    counts[batch.series[i]]++;
    sums[batch.series[i]] += batch.values[i];
  }
  const at = BigInt(batch.atMs);
  for (let s = 0; s < ids.length; s++) {
    if (counts[s] === 0) continue;
    const id = ids[s];
    const fixed = encodeFixed(sums[s]);
    const count = BigInt(counts[s]);
    fold(folded, metricTotalKey(id, "first_at"), "min", at);
    fold(folded, metricTotalKey(id, "last_at"), "max", at);
    fold(folded, metricTotalKey(id, "total"), "sum", fixed);
    for (const step of STEP_NAMES) {
      const t = batch.atMs - (batch.atMs % STEPS[step]);
      fold(folded, metricBucketKey(step, id, t, "sum"), "sum", fixed);
      fold(folded, metricBucketKey(step, id, t, "count"), "sum", count);
    }
  }
}

/** Commits the folded writes of `batches`, in chunks of at most 900 mutations. */
async function commitBatches(kv: Deno.Kv, ids: string[], batches: Batch[]): Promise<void> {
  const folded: Folded = new Map();
  for (const batch of batches) addBatch(folded, ids, batch);
  const all = [...folded.values()];
  for (let i = 0; i < all.length; i += MAX_MUTATIONS) {
    const op = kv.atomic();
    for (const f of all.slice(i, i + MAX_MUTATIONS)) {
      op.mutate({ type: f.type, key: f.key, value: new Deno.KvU64(f.value) });
    }
    if (!(await op.commit()).ok) throw new Error("Cannot store the batch as a KV commit failed");
  }
}

/**
 * Group commit: a batch that arrives while a commit is in flight waits for
 * it, then goes into the next commit with every other batch that waited;
 * each is answered once its own commit is done.
 */
function groupCommitter(kv: Deno.Kv, ids: string[]): (batch: Batch) => Promise<void> {
  let waiting: { batch: Batch; done: () => void; failed: (e: unknown) => void }[] = [];
  let busy = false;
  async function drain(): Promise<void> {
    busy = true;
    while (waiting.length) {
      const group = waiting;
      waiting = [];
      try {
        await commitBatches(kv, ids, group.map((g) => g.batch));
        for (const g of group) g.done();
      } catch (error) {
        for (const g of group) g.failed(error);
      }
    }
    busy = false;
  }
  return (batch) =>
    new Promise((done, failed) => {
      waiting.push({ batch, done, failed });
      if (!busy) drain();
    });
}

/** Reads every bucket of one series and step in the last `spanMs`: the ceiling of a query. */
async function readBuckets(kv: Deno.Kv, id: string, step: string, spanMs: number): Promise<void> {
  const to = Date.now();
  let n = 0;
  for await (
    const _ of kv.list({
      start: [...metricBucketsPrefix(step, id), to - spanMs],
      end: [...metricBucketsPrefix(step, id), to + 1],
    })
  ) n++;
  if (n === 0) throw new Error(`Cannot query the ${step} buckets as none were found`);
}

/** The total of every series' `total`, back from fixed point. */
async function storedSum(kv: Deno.Kv): Promise<number> {
  let total = 0n;
  for await (const entry of kv.list<Deno.KvU64>({ prefix: metricTotalsPrefix() })) {
    if (entry.key.at(-1) === "total") total += entry.value.value;
  }
  return decodeFixed(BigInt.asUintN(64, total));
}

if (import.meta.main) {
  const config: BareConfig = JSON.parse(Deno.env.get("BENCH_METRICS_BARE") ?? "null");
  if (!config) {
    console.error("Cannot run the bare KV ceiling as BENCH_METRICS_BARE is not set");
    Deno.exit(2);
  }
  const kv = await Deno.openKv(config.kvPath);
  const ids = await seriesIds(Math.max(config.shape.seriesCount, config.shape.rssSeries));
  const target: IngestTarget = {
    pid: Deno.pid,
    send: config.mode === "group"
      ? groupCommitter(kv, ids)
      : (batch) => commitBatches(kv, ids, [batch]),
    storedSum: () => storedSum(kv),
    queries: {
      hour10s: () => readBuckets(kv, ids[1], "10s", 3_600_000),
      month1h: () => readBuckets(kv, ids[1], "1h", 30 * 86_400_000),
    },
  };
  const result = await measureTarget(
    target,
    config.shape,
    (line) => console.error(`[bare-${config.mode}] ${line}`),
  );
  kv.close();
  console.log(JSON.stringify(result));
}
