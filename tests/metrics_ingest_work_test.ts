/**
 * The ingest path's work, counted rather than timed (issue 11's benchmark
 * goals): what a push costs must not grow with its points where it need
 * only grow with its series, and the shortcuts must not change what is
 * stored.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { metricBucketKey, metricTotalKey } from "../lib/store/keys.ts";
import { binOf, encodeFixed, encodeOrdered } from "../lib/metrics/encoding.ts";
import { parseLineProtocol } from "../lib/metrics/line_protocol.ts";
import {
  checkPoint,
  isRejection,
  labelsProblem,
  type MetricPoint,
  seriesId,
} from "../lib/metrics/points.ts";
import { SeriesIds, seriesLookupKey } from "../lib/metrics/series_ids.ts";
import { isLater, type LastValue, Rollup, STEP_NAMES, STEPS } from "../lib/metrics/rollup.ts";
import { commitRollup } from "../lib/metrics/writer.ts";
import { startTestServer } from "./helpers.ts";
import { createKey, push, seriesOf } from "./metrics_fixtures.ts";

/** Counts SHA-256 digests of series ids of `name` while `fn` runs. */
async function countSeriesDigests(name: string, fn: () => Promise<void>): Promise<number> {
  const subtle = crypto.subtle;
  const original = subtle.digest;
  const prefix = JSON.stringify([name]).slice(0, -1) + ",";
  let count = 0;
  subtle.digest = function (algorithm, data) {
    const bytes = ArrayBuffer.isView(data)
      ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
      : new Uint8Array(data as ArrayBuffer);
    if (new TextDecoder().decode(bytes).startsWith(prefix)) count++;
    return original.call(subtle, algorithm, data);
  };
  try {
    await fn();
  } finally {
    subtle.digest = original;
  }
  return count;
}

Deno.test("a push hashes each distinct series once, and a later push of the same series not at all", async () => {
  await using server = await startTestServer();
  const key = (await createKey(server, "ingest")).key;
  const points = Array.from({ length: 500 }, (_, i) => ({
    name: "work.hits",
    type: "counter",
    value: 1,
    labels: { host: `h${i % 5}`, dc: "eu" },
  }));
  const first = await countSeriesDigests("work.hits", async () => {
    const res = await push(server.url, key, { points });
    assert.deepEqual(res.body, { accepted: 500, rejected: [] });
  });
  assert.equal(first, 5);
  const second = await countSeriesDigests("work.hits", async () => {
    const res = await push(server.url, key, { points });
    assert.deepEqual(res.body, { accepted: 500, rejected: [] });
  });
  assert.equal(second, 0);
  const series = await seriesOf(server.url, await server.mint(), "work.hits");
  assert.deepEqual(series.map((s) => [s.labels.host, s.last]).sort(), [
    ["h0", 200],
    ["h1", 200],
    ["h2", 200],
    ["h3", 200],
    ["h4", 200],
  ]);
});

Deno.test("remembered series ids: label order does not split a series, and look-alike labels do not merge two", async () => {
  await using server = await startTestServer();
  const key = (await createKey(server, "ingest")).key;
  const point = (value: number, labels: Record<string, string>) => ({
    name: "work.same",
    type: "counter",
    value,
    labels,
  });
  const res = await push(server.url, key, {
    points: [
      point(1, { a: "1", b: "2" }),
      point(2, { b: "2", a: "1" }),
      // Would read as a=1, b=2 to a key that joins labels without lengths.
      point(4, { a: "1,b=1:2" }),
      point(8, { a: "1,b=2" }),
    ],
  });
  assert.deepEqual(res.body, { accepted: 4, rejected: [] });
  const again = await push(server.url, key, { points: [point(16, { b: "2", a: "1" })] });
  assert.deepEqual(again.body, { accepted: 1, rejected: [] });
  const series = await seriesOf(server.url, await server.mint(), "work.same");
  assert.deepEqual(
    series.map((s) => [JSON.stringify(Object.entries(s.labels).sort()), s.last]).sort(),
    [
      [JSON.stringify([["a", "1"], ["b", "2"]]), 19],
      [JSON.stringify([["a", "1,b=1:2"]]), 4],
      [JSON.stringify([["a", "1,b=2"]]), 8],
    ],
  );
});

Deno.test("Rollup.add() folds points without serializing a KV key per point", () => {
  const rollup = new Rollup(90);
  const at = Date.now();
  const stringify = JSON.stringify;
  let calls = 0;
  JSON.stringify = ((...args: Parameters<typeof stringify>) => {
    calls++;
    return stringify(...args);
  }) as typeof stringify;
  try {
    for (let i = 0; i < 1000; i++) {
      const type = (["counter", "gauge", "histogram"] as const)[i % 3];
      rollup.add(`s${i % 10}`, { name: "n", type, value: i, labels: {}, at: at - i }, at, i);
    }
  } finally {
    JSON.stringify = stringify;
  }
  assert.equal(calls, 0);
});

type Op = "sum" | "min" | "max";

/** What the KV store must hold after `points`, folded key by key the plain way. */
function expectedStore(
  points: { id: string; point: MetricPoint; seq: number }[],
  received: number,
): Map<string, bigint | LastValue> {
  const out = new Map<string, bigint | LastValue>();
  const fold = (key: Deno.KvKey, op: Op, value: bigint) => {
    const id = JSON.stringify(key);
    const current = out.get(id) as bigint | undefined;
    out.set(
      id,
      current === undefined
        ? value
        : op === "sum"
        ? BigInt.asUintN(64, current + value)
        : op === "min"
        ? (value < current ? value : current)
        : (value > current ? value : current),
    );
  };
  const last = (key: Deno.KvKey, value: LastValue) => {
    const id = JSON.stringify(key);
    const current = out.get(id) as LastValue | undefined;
    if (current === undefined || isLater(value, current)) out.set(id, value);
  };
  for (const { id, point, seq } of points) {
    const { type, value, at } = point;
    const l = { at, received, seq, value };
    fold(metricTotalKey(id, "first_at"), "min", BigInt(at));
    fold(metricTotalKey(id, "last_at"), "max", BigInt(at));
    if (type === "counter") fold(metricTotalKey(id, "total"), "sum", encodeFixed(value));
    if (type === "histogram") fold(metricTotalKey(id, "count"), "sum", 1n);
    if (type === "gauge") last(metricTotalKey(id, "last"), l);
    for (const step of STEP_NAMES) {
      const t = at - (at % STEPS[step]);
      fold(metricBucketKey(step, id, t, "sum"), "sum", encodeFixed(value));
      fold(metricBucketKey(step, id, t, "count"), "sum", 1n);
      if (type === "counter") continue;
      fold(metricBucketKey(step, id, t, "min"), "min", encodeOrdered(value));
      fold(metricBucketKey(step, id, t, "max"), "max", encodeOrdered(value));
      if (type === "gauge") last(metricBucketKey(step, id, t, "last"), l);
      else {
        const bin = binOf(value);
        fold(metricBucketKey(step, id, t, "h", bin.sign, bin.index), "sum", 1n);
      }
    }
  }
  return out;
}

Deno.test("commitRollup() of rollups folded and merged stores exactly the plain per-key fold, big sums included", async () => {
  const now = Date.now();
  const series = ["c", "g", "h"] as const;
  const typeOf = { c: "counter", g: "gauge", h: "histogram" } as const;
  const pointArb = fc.record({
    s: fc.constantFrom(...series),
    n: fc.integer({ min: 0, max: 2 }),
    value: fc.oneof(
      fc.double({ min: -1e12, max: 1e12, noNaN: true }),
      fc.constantFrom(1e12, -1e12, 0, -0, 0.0005, 123.456),
    ),
    ago: fc.integer({ min: 0, max: 3 * 3_600_000 }),
  });
  await fc.assert(
    fc.asyncProperty(
      fc.array(pointArb, { minLength: 1, maxLength: 60 }),
      fc.integer({ min: 1, max: 4 }),
      async (raw, parts) => {
        using kv = await Deno.openKv(":memory:");
        // Sums past 2^53 thousandths, which must not lose a digit.
        const big = Array.from({ length: 12 }, (_, i) => ({
          s: series[i % 3],
          n: 0,
          value: i % 3 === 1 ? -1e12 : 1e12,
          ago: i,
        })).concat(Array.from({ length: 12 }, (_, i) => ({ s: "g", n: 0, value: -1e12, ago: i })));
        const points = [...big, ...raw].map((r, seq) => {
          const type = typeOf[r.s];
          const value = type === "counter" ? Math.abs(r.value) : r.value;
          const point: MetricPoint = { name: r.s, type, value, labels: {}, at: now - r.ago };
          return { id: `${r.s}${r.n}`, point, seq };
        });
        // Several rollups merged, as the writer folds concurrent pushes.
        const rollups = Array.from({ length: parts }, () => new Rollup(90));
        points.forEach((p, i) => rollups[i % parts].add(p.id, p.point, now, p.seq));
        const merged = new Rollup(90);
        for (const r of rollups) merged.merge(r);
        await commitRollup(kv, merged);
        const stored = new Map<string, bigint | LastValue>();
        for (const prefix of ["metric_totals", ...STEP_NAMES.map((s) => `metric_buckets_${s}`)]) {
          for await (const e of kv.list<Deno.KvU64 | LastValue>({ prefix: [prefix] })) {
            stored.set(
              JSON.stringify(e.key),
              e.value instanceof Deno.KvU64 ? e.value.value : e.value,
            );
          }
        }
        assert.deepEqual(stored, expectedStore(points, now));
      },
    ),
    { numRuns: 60 },
  );
});

Deno.test("METRICS_PUSHES_PER_KEY_PER_10S sets the per-key push limit: 429 with Retry-After past it", async () => {
  await using server = await startTestServer({ METRICS_PUSHES_PER_KEY_PER_10S: "2" });
  const key = (await createKey(server, "ingest")).key;
  const body = { points: [{ name: "work.limited", type: "counter", value: 1 }] };
  for (let i = 0; i < 2; i++) assert.equal((await push(server.url, key, body)).status, 200);
  const limited = await push(server.url, key, body);
  assert.equal(limited.status, 429);
  const retry = Number(limited.headers.get("retry-after"));
  assert.ok(retry >= 1 && retry <= 10, `Retry-After ${retry}`);
  const write = await fetch(new URL("/api/v2/write", server.url), {
    method: "POST",
    headers: { Authorization: `Token ${key}` },
    body: "work.limited v=1i",
  });
  assert.equal(write.status, 429);
  await write.body?.cancel();
});

Deno.test("checkPoint() checks labels without an array per point", () => {
  const entries = Object.entries;
  let calls = 0;
  Object.entries = ((o: object) => {
    calls++;
    return entries(o);
  }) as typeof Object.entries;
  const now = Date.now();
  let valid = 0;
  try {
    for (let i = 0; i < 1000; i++) {
      const point = { name: "n", type: "gauge", value: i, labels: { host: `h${i % 7}`, dc: "eu" } };
      if (!isRejection(checkPoint(point, now))) valid++;
    }
  } finally {
    Object.entries = entries;
  }
  assert.equal(valid, 1000);
  assert.equal(calls, 0);
  const nine = Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`k${i}`, "v"]));
  assert.match(labelsProblem(nine)!, /more than 8 labels: current count is 9$/);
  assert.match(labelsProblem({ ok: "v", "bad-key": "v" })!, /current key is "bad-key"$/);
  assert.match(labelsProblem({ a: 1 })!, /label a must be a string: current value is 1$/);
  assert.equal(labelsProblem(Object.assign(Object.create({ inherited: 1 }), { a: "v" })), null);
});

Deno.test("parseLineProtocol() converts a 19-digit timestamp to a bigint once, and still checks 64-bit ranges", () => {
  const lines = Array.from(
    { length: 100 },
    (_, i) => `m,s=${i} v=${i}i 1764500000${i % 10}00000000`,
  );
  const original = globalThis.BigInt;
  let calls = 0;
  globalThis.BigInt = Object.assign((value: string | number | bigint | boolean) => {
    calls++;
    return original(value);
  }, original) as typeof BigInt;
  let parsed: ReturnType<typeof parseLineProtocol>;
  try {
    parsed = [...parseLineProtocol(lines.join("\n"))];
  } finally {
    globalThis.BigInt = original;
  }
  assert.equal(parsed.filter((r) => r.ok).length, 100);
  assert.ok(calls <= 100, `${calls} bigints for 100 timestamps`);
  const one = (line: string) => [...parseLineProtocol(line)][0];
  assert.deepEqual(one("m v=1 9223372036854775807").ok, true);
  assert.deepEqual(one("m v=1 -9223372036854775808").ok, true);
  assert.deepEqual(one("m v=1 8999999999999999999").ok, true);
  assert.deepEqual(one("m v=1 9223372036854775808").ok, false);
  assert.deepEqual(one("m v=1 -9223372036854775809").ok, false);
  assert.deepEqual(one("m v=9223372036854775807i").ok, true);
  assert.deepEqual(one("m v=9223372036854775808i").ok, false);
  assert.deepEqual(one("m v=18446744073709551615u").ok, true);
  assert.deepEqual(one("m v=18446744073709551616u").ok, false);
  assert.deepEqual(one("m v=9999999999999999999u").ok, true);
});

Deno.test("SeriesIds remembers at most max ids and forgets the least recently used first", async () => {
  const ids = new SeriesIds({ max: 2 });
  const a = { name: "a", labels: { k: "1" } };
  const b = { name: "b", labels: {} };
  const c = { name: "c", labels: {} };
  const key = (s: typeof a | typeof b) => seriesLookupKey(s.name, s.labels);
  assert.equal(ids.known(key(a)), undefined);
  const idA = await ids.idOf(key(a), a.name, a.labels);
  assert.equal(idA, await seriesId(a.name, a.labels));
  await ids.idOf(key(b), b.name, b.labels);
  assert.equal(ids.known(key(a)), idA); // a is now the most recently used
  await ids.idOf(key(c), c.name, c.labels);
  assert.equal(ids.size, 2);
  assert.equal(ids.known(key(b)), undefined);
  assert.equal(ids.known(key(a)), idA);
  assert.throws(
    () => new SeriesIds({ max: 0 }),
    /'max' must be a positive integer: current value is 0/,
  );
});
