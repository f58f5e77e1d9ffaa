/**
 * One push of points, from raw input to durable KV: each point checked, its
 * series registered (type and cap), the accepted ones rolled up in memory
 * and committed through the shared {@linkcode RollupWriter}.
 */
import { Rollup } from "./rollup.ts";
import { checkPoint, isRejection, type MetricPoint, type RejectReason } from "./points.ts";
import {
  type SeriesRecord,
  type SeriesRegistry,
  type SeriesStatus,
  seriesTypeKey,
} from "./series.ts";
import { SeriesIds, seriesLookupKey } from "./series_ids.ts";
import type { RollupWriter } from "./writer.ts";

/** Most points in one push; more is 413. */
export const MAX_POINTS = 5000;
/** Largest push body, after decompression; more is 413. */
export const MAX_BODY_BYTES = 1024 * 1024;

/** A rejected point, by its index in the push. */
export interface RejectedPoint {
  index: number;
  reason: RejectReason;
  message: string;
}

/** What the ingest path needs. */
export interface IngestDeps {
  series: SeriesRegistry;
  writer: RollupWriter;
  retentionDays: number;
  /** Remembered series ids; without it, each push computes its own. */
  ids?: SeriesIds;
}

/** A distinct series and type of a push, and what registration said of it. */
interface Wanted {
  lookup: string;
  record: Omit<SeriesRecord, "createdAt">;
  status?: SeriesStatus;
}

/** Stores the valid points of a push and names the others. */
export async function ingestPoints(
  deps: IngestDeps,
  raw: unknown[],
  options: { now?: number } = {},
): Promise<{ accepted: number; rejected: RejectedPoint[] }> {
  const now = options.now ?? Date.now();
  const ids = deps.ids ?? new SeriesIds({ max: MAX_POINTS });
  const rejected: RejectedPoint[] = [];
  // Parallel arrays rather than an object per valid point.
  const validIndex: number[] = [];
  const validPoint: MetricPoint[] = [];
  const validWanted: Wanted[] = [];
  // A series is asked for with each type its points have (the name's type
  // decides); its id and record are made once per push, not once per point.
  const wanted = new Map<string, Wanted>();
  for (let index = 0; index < raw.length; index++) {
    const checked = checkPoint(raw[index], now);
    if (isRejection(checked)) {
      rejected.push({ index, ...checked });
      continue;
    }
    const lookup = seriesLookupKey(checked.name, checked.labels);
    const key = checked.type + "|" + lookup;
    let w = wanted.get(key);
    if (w === undefined) {
      const { name, type, labels } = checked;
      w = { lookup, record: { id: "", name, type, labels } };
      wanted.set(key, w);
    }
    validIndex.push(index);
    validPoint.push(checked);
    validWanted.push(w);
  }
  for (const w of wanted.values()) {
    w.record.id = ids.known(w.lookup) ??
      await ids.idOf(w.lookup, w.record.name, w.record.labels);
  }
  const records = [...wanted.values()].map((w) => w.record);
  const status = await deps.series.ensure(records);
  for (const w of wanted.values()) {
    w.status = status.get(seriesTypeKey(w.record.id, w.record.type));
  }
  const rollup = new Rollup(deps.retentionDays);
  let accepted = 0;
  for (let i = 0; i < validIndex.length; i++) {
    const index = validIndex[i];
    const point = validPoint[i];
    const s = validWanted[i].status;
    if (s === "ok") {
      rollup.add(validWanted[i].record.id, point, now, index);
      accepted++;
    } else if (s === "too_many_series") {
      rejected.push({
        index,
        reason: s,
        message: "Cannot store the point as it would add a series past METRICS_MAX_SERIES",
      });
    } else {
      rejected.push({
        index,
        reason: "type_conflict",
        message: `Cannot store the point as ${point.name} is not a ${point.type}`,
      });
    }
  }
  await deps.writer.write(rollup);
  rejected.sort((a, b) => a.index - b.index);
  return { accepted, rejected };
}
