/**
 * One push of points, from raw input to durable KV: each point checked, its
 * series registered (type and cap), the accepted ones rolled up in memory
 * and committed through the shared {@linkcode RollupWriter}.
 */
import { Rollup } from "./rollup.ts";
import {
  checkPoint,
  isRejection,
  type MetricPoint,
  type RejectReason,
  seriesId,
} from "./points.ts";
import { type SeriesRecord, type SeriesRegistry, seriesTypeKey } from "./series.ts";
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
}

/** Stores the valid points of a push and names the others. */
export async function ingestPoints(
  deps: IngestDeps,
  raw: unknown[],
  options: { now?: number } = {},
): Promise<{ accepted: number; rejected: RejectedPoint[] }> {
  const now = options.now ?? Date.now();
  const rejected: RejectedPoint[] = [];
  const valid: { index: number; point: MetricPoint; id: string }[] = [];
  for (const [index, item] of raw.entries()) {
    const checked = checkPoint(item, now);
    if (isRejection(checked)) rejected.push({ index, ...checked });
    else valid.push({ index, point: checked, id: await seriesId(checked.name, checked.labels) });
  }
  // A series is asked for with each type its points have; the name's type decides.
  const wanted = new Map<string, Omit<SeriesRecord, "createdAt">>();
  for (const v of valid) {
    const key = seriesTypeKey(v.id, v.point.type);
    if (!wanted.has(key)) {
      wanted.set(key, { id: v.id, name: v.point.name, type: v.point.type, labels: v.point.labels });
    }
  }
  const status = await deps.series.ensure([...wanted.values()]);
  const rollup = new Rollup(deps.retentionDays);
  let accepted = 0;
  for (const v of valid) {
    const s = status.get(seriesTypeKey(v.id, v.point.type));
    if (s === "ok") {
      rollup.add(v.id, v.point, now, v.index);
      accepted++;
    } else if (s === "too_many_series") {
      rejected.push({
        index: v.index,
        reason: s,
        message: "Cannot store the point as it would add a series past METRICS_MAX_SERIES",
      });
    } else {
      rejected.push({
        index: v.index,
        reason: "type_conflict",
        message: `Cannot store the point as ${v.point.name} is not a ${v.point.type}`,
      });
    }
  }
  await deps.writer.write(rollup);
  rejected.sort((a, b) => a.index - b.index);
  return { accepted, rejected };
}
