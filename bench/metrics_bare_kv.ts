/**
 * The bare KV ceiling of the ingest benchmark: no HTTP, no parsing, no
 * checks, only the KV commits that storing the batches' rollups takes. Per
 * series and per bucket of each of the four rollup steps, a `sum` on a count
 * and a sum (KvU64), in atomic commits split at KV's 1,000 mutations, awaited
 * before the sender's next batch, as Lookout must. Two modes: `batch`, one
 * commit per batch; `group`, the batches that arrive while a commit is in
 * flight are summed together into the next one (group commit: the same keys,
 * so eight batches cost about what one does). It runs the same phases as the
 * other targets (bench/metrics_load.ts), in this process, with its settings
 * as JSON in `BENCH_METRICS_BARE`, and prints one JSON
 * {@linkcode TargetResult} line.
 *
 * The keys are a stand-in for Lookout's own rollup keys (documented in
 * bench/README.md): `["metric_rollups", series, step, bucketStartMs, "count"|"sum"]`.
 */
import {
  type Batch,
  FIELD,
  type IngestTarget,
  type LoadShape,
  MEASUREMENT,
  measureTarget,
  seriesName,
} from "./metrics_load.ts";

/** The rollup steps Lookout keeps (CONTRACT 7.3), in ms. */
const STEPS: [string, number][] = [["10s", 10_000], ["1m", 60_000], ["1h", 3_600_000], [
  "1d",
  86_400_000,
]];
/** Most mutations one KV atomic commit takes. */
const MAX_MUTATIONS = 1000;

/** The settings the runner passes. */
export interface BareConfig {
  kvPath: string;
  shape: LoadShape;
  mode: "batch" | "group";
}

/** A rollup key of the stand-in layout. */
function rollupKey(
  series: string,
  step: string,
  bucket: number,
  part: "count" | "sum",
): Deno.KvKey {
  return ["metric_rollups", series, step, bucket, part];
}

/** The series key of tag value `name`, as Lookout names a line-protocol series. */
function seriesKey(name: string): string {
  return `${MEASUREMENT}.${FIELD}{series=${name}}`;
}

type Sums = Map<
  string,
  { series: string; step: string; bucket: number; count: number; sum: number }
>;

function addBatch(sums: Sums, batch: Batch): void {
  for (let i = 0; i < batch.series.length; i++) {
    const series = seriesKey(seriesName(batch.series[i]));
    for (const [step, ms] of STEPS) {
      const bucket = Math.floor(batch.atMs / ms) * ms;
      const id = `${series}|${step}|${bucket}`;
      const entry = sums.get(id);
      if (entry) {
        entry.count++;
        entry.sum += batch.values[i];
      } else sums.set(id, { series, step, bucket, count: 1, sum: batch.values[i] });
    }
  }
}

/**
 * Group commit: a batch that arrives while a commit is in flight waits for
 * it, then goes into the next commit with every other batch that waited;
 * each is answered once its own commit is done.
 */
function groupCommitter(kv: Deno.Kv): (batch: Batch) => Promise<void> {
  let waiting: { batch: Batch; done: () => void; failed: (e: unknown) => void }[] = [];
  let busy = false;
  async function drain(): Promise<void> {
    busy = true;
    while (waiting.length) {
      const group = waiting;
      waiting = [];
      try {
        await commitBatches(kv, group.map((g) => g.batch));
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

/** Commits the rollups of `batches`, summed per key first: one mutation per key. */
async function commitBatches(kv: Deno.Kv, batches: Batch[]): Promise<void> {
  const sums: Sums = new Map();
  for (const batch of batches) addBatch(sums, batch);
  let op = kv.atomic();
  let mutations = 0;
  const commits: Promise<Deno.KvCommitResult | Deno.KvCommitError>[] = [];
  for (const { series, step, bucket, count, sum } of sums.values()) {
    if (mutations + 2 > MAX_MUTATIONS) {
      commits.push(op.commit());
      op = kv.atomic();
      mutations = 0;
    }
    op.sum(rollupKey(series, step, bucket, "count"), BigInt(count));
    op.sum(rollupKey(series, step, bucket, "sum"), BigInt(sum));
    mutations += 2;
  }
  commits.push(op.commit());
  for (const result of await Promise.all(commits)) {
    if (!result.ok) throw new Error("Cannot store the batch as a KV commit failed");
  }
}

/** Reads every bucket of one series and step in `[from, to]`: the ceiling of a query. */
async function readBuckets(kv: Deno.Kv, step: string, spanMs: number): Promise<void> {
  const series = seriesKey(seriesName(1));
  const to = Date.now();
  let n = 0;
  for await (
    const _ of kv.list({
      start: ["metric_rollups", series, step, to - spanMs],
      end: ["metric_rollups", series, step, to + 1],
    })
  ) n++;
  if (n === 0) throw new Error(`Cannot query the ${step} buckets as none were found`);
}

/** The total of every `sum` of the 1d step: each increment is in exactly one day bucket. */
async function storedSum(kv: Deno.Kv): Promise<number> {
  let total = 0n;
  for await (const entry of kv.list<Deno.KvU64>({ prefix: ["metric_rollups"] })) {
    if (entry.key[2] === "1d" && entry.key[4] === "sum") total += entry.value.value;
  }
  return Number(total);
}

if (import.meta.main) {
  const config: BareConfig = JSON.parse(Deno.env.get("BENCH_METRICS_BARE") ?? "null");
  if (!config) {
    console.error("Cannot run the bare KV ceiling as BENCH_METRICS_BARE is not set");
    Deno.exit(2);
  }
  const kv = await Deno.openKv(config.kvPath);
  const target: IngestTarget = {
    pid: Deno.pid,
    send: config.mode === "group" ? groupCommitter(kv) : (batch) => commitBatches(kv, [batch]),
    storedSum: () => storedSum(kv),
    queries: {
      hour10s: () => readBuckets(kv, "10s", 3_600_000),
      month1h: () => readBuckets(kv, "1h", 30 * 86_400_000),
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
