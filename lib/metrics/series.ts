/**
 * The series of the deployment: each one registered once, its name's type
 * fixed by the first point, and their number capped by `METRICS_MAX_SERIES`.
 * Both rules are decided inside KV commits guarded by checks (the count's
 * versionstamp, the name's record, the series' absence), so concurrent new
 * series on any number of instances can neither overshoot the cap nor give
 * one name two types.
 */
import {
  metricNameKey,
  metricSeriesByNameKey,
  metricSeriesCountKey,
  metricSeriesKey,
} from "../store/keys.ts";
import type { MetricType } from "./points.ts";

/** A series record. */
export interface SeriesRecord {
  id: string;
  name: string;
  type: MetricType;
  labels: Record<string, string>;
  createdAt: number;
}

/** What registration decided for one series. */
export type SeriesStatus = "ok" | "type_conflict" | "too_many_series";

/** New series per commit: each costs a check and three writes (KV allows 100 checks). */
const NEW_PER_COMMIT = 40;

/**
 * Registers series, remembering the ones it saw stored: series are never
 * deleted, so a known series needs no KV read again.
 */
export class SeriesRegistry {
  #kv: Deno.Kv;
  #maxSeries: number;
  #known = new Map<string, MetricType>();
  #names = new Map<string, MetricType>();

  constructor(kv: Deno.Kv, options: { maxSeries: number }) {
    this.#kv = kv;
    this.#maxSeries = options.maxSeries;
  }

  /**
   * Decides every series of a push, by {@linkcode seriesTypeKey} (a push may
   * hold one series with two types: the name's type wins); new ones are
   * stored when they fit.
   */
  async ensure(wanted: Omit<SeriesRecord, "createdAt">[]): Promise<Map<string, SeriesStatus>> {
    const status = new Map<string, SeriesStatus>();
    const unknown = new Map<string, Omit<SeriesRecord, "createdAt">>();
    for (const s of wanted) {
      const name = this.#names.get(s.name);
      const key = seriesTypeKey(s.id, s.type);
      if (name !== undefined && name !== s.type) status.set(key, "type_conflict");
      else if (this.#known.has(s.id)) status.set(key, "ok");
      else unknown.set(key, s);
    }
    const pending = [...unknown.values()];
    for (let i = 0; i < pending.length; i += NEW_PER_COMMIT) {
      const decided = await this.#register(pending.slice(i, i + NEW_PER_COMMIT));
      for (const [id, s] of decided) status.set(id, s);
    }
    return status;
  }

  async #register(
    series: Omit<SeriesRecord, "createdAt">[],
  ): Promise<Map<string, SeriesStatus>> {
    for (let attempt = 0;; attempt++) {
      const status = new Map<string, SeriesStatus>();
      const names = [...new Set(series.map((s) => s.name))];
      const [count, ...rest] = await getAll<unknown>(this.#kv, [
        metricSeriesCountKey(),
        ...names.map(metricNameKey),
        ...series.map((s) => metricSeriesKey(s.id)),
      ]);
      const nameEntries = rest.slice(0, names.length) as Deno.KvEntryMaybe<MetricType>[];
      const seriesEntries = rest.slice(names.length) as Deno.KvEntryMaybe<SeriesRecord>[];
      const types = new Map<string, MetricType>();
      nameEntries.forEach((e, i) => {
        if (e.value !== null) types.set(names[i], e.value);
      });
      const op = this.#kv.atomic().check(count);
      for (const e of nameEntries) op.check(e);
      let total = count.value instanceof Deno.KvU64 ? Number(count.value.value) : 0;
      const added: SeriesRecord[] = [];
      const claimed = new Set<string>();
      const created = new Set<string>();
      const now = Date.now();
      series.forEach((s, i) => {
        const key = seriesTypeKey(s.id, s.type);
        const type = types.get(s.name);
        if (type !== undefined && type !== s.type) return status.set(key, "type_conflict");
        if (seriesEntries[i].value !== null || created.has(s.id)) return status.set(key, "ok");
        if (total >= this.#maxSeries) return status.set(key, "too_many_series");
        if (type === undefined) {
          types.set(s.name, s.type);
          claimed.add(s.name);
        }
        total++;
        const record = { ...s, createdAt: now };
        added.push(record);
        op.check({ key: metricSeriesKey(s.id), versionstamp: null });
        op.set(metricSeriesKey(s.id), record);
        op.set(metricSeriesByNameKey(s.name, s.id), s.id);
        created.add(s.id);
        status.set(key, "ok");
      });
      for (const name of claimed) op.set(metricNameKey(name), types.get(name)!);
      if (added.length > 0) op.set(metricSeriesCountKey(), new Deno.KvU64(BigInt(total)));
      if (added.length === 0 || (await op.commit()).ok) {
        for (const [name, type] of types) this.#names.set(name, type);
        series.forEach((s, i) => {
          if (status.get(seriesTypeKey(s.id, s.type)) === "ok" || seriesEntries[i].value !== null) {
            this.#known.set(s.id, s.type);
          }
        });
        return status;
      }
      // Another writer got in between: read again, after a short jittered wait.
      await new Promise((r) => setTimeout(r, Math.random() * Math.min(50, 2 ** attempt)));
    }
  }
}

/** The key of a series asked for with one type, in {@linkcode SeriesRegistry.ensure}'s answer. */
export function seriesTypeKey(id: string, type: MetricType): string {
  return `${id}:${type}`;
}

/** `getMany` in chunks of ten (KV's limit per call), in order. */
export async function getAll<T>(kv: Deno.Kv, keys: Deno.KvKey[]): Promise<Deno.KvEntryMaybe<T>[]> {
  const out: Deno.KvEntryMaybe<T>[] = [];
  for (let i = 0; i < keys.length; i += 10) {
    out.push(...await kv.getMany<T[]>(keys.slice(i, i + 10)));
  }
  return out;
}
