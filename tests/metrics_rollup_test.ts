import assert from "node:assert/strict";
import fc from "fast-check";
import {
  binOf,
  binValue,
  decodeFixed,
  decodeOrdered,
  encodeFixed,
  encodeOrdered,
} from "../lib/metrics/encoding.ts";
import { metricTotalKey } from "../lib/store/keys.ts";
import { Rollup } from "../lib/metrics/rollup.ts";
import { commitRollup } from "../lib/metrics/writer.ts";
import { sweepExpiredBuckets } from "../lib/metrics/retention.ts";
import { feedEventsPrefix, metricBucketKey, metricSeriesKey } from "../lib/store/keys.ts";
import type { FeedEvent } from "../lib/realtime/feed.ts";

Deno.test("encodeOrdered() keeps the numbers' order as unsigned u64 order, and decodes back", () => {
  fc.assert(fc.property(fc.double({ noNaN: true }), fc.double({ noNaN: true }), (a, b) => {
    const ea = encodeOrdered(a);
    const eb = encodeOrdered(b);
    assert.equal(
      Math.sign(Number(ea > eb) - Number(ea < eb)),
      Math.sign((a > b ? 1 : 0) - (a < b ? 1 : 0)),
    );
    assert.equal(decodeOrdered(ea), a === 0 ? 0 : a);
  }));
});

Deno.test("encodeFixed() sums of negatives and positives wrap to the exact signed total", () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: -1e9, max: 1e9 }), { maxLength: 50 }), (values) => {
      let sum = 0n;
      for (const v of values) sum = BigInt.asUintN(64, sum + encodeFixed(v / 1000));
      assert.equal(decodeFixed(sum), values.reduce((a, b) => a + b, 0) / 1000);
    }),
  );
});

Deno.test("binValue(binOf(x)) is within 1 % of x", () => {
  fc.assert(fc.property(fc.double({ min: -1e12, max: 1e12, noNaN: true }), (x) => {
    const v = binValue(binOf(x));
    if (Math.abs(x) < 1e-9) assert.equal(v, 0);
    else assert.ok(Math.abs(v - x) <= 0.01 * Math.abs(x) + 1e-12, `${x} -> ${v}`);
  }));
});

/** A KV whose `getMany` answers and then waits for `gate`, so a read can be made stale. */
function heldReads(kv: Deno.Kv, gate: Promise<void>, held: () => void): Deno.Kv {
  return new Proxy(kv, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (prop === "getMany") {
        return async (...args: unknown[]) => {
          const result = await value.apply(target, args);
          held();
          await gate;
          return result;
        };
      }
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

Deno.test("commitRollup() does not let a stale read of a gauge's last overwrite a later one", async () => {
  using kv = await Deno.openKv(":memory:");
  const at = Date.now();
  const older = new Rollup(90);
  older.add("s", { name: "g", type: "gauge", value: 1, labels: {}, at }, at, 0);
  const newer = new Rollup(90);
  newer.add("s", { name: "g", type: "gauge", value: 2, labels: {}, at: at + 5 }, at, 0);
  const gate = Promise.withResolvers<void>();
  const reading = Promise.withResolvers<void>();
  // The older write reads the lasts (none yet), then waits while the newer one commits.
  const slow = commitRollup(heldReads(kv, gate.promise, reading.resolve), older);
  await reading.promise;
  await commitRollup(kv, newer);
  gate.resolve();
  await slow;
  const last = await kv.get<{ value: number }>(metricTotalKey("s", "last"));
  assert.equal(last.value?.value, 2);
  const count = await kv.get<Deno.KvU64>(metricBucketKey("10s", "s", at - (at % 10_000), "count"));
  assert.equal(count.value?.value, 2n);
});

Deno.test("commitRollup() splits a rollup past KV's 1,000 mutations and 100 checks into several commits", async () => {
  using kv = await Deno.openKv(":memory:");
  const rollup = new Rollup(90);
  const at = Date.now();
  for (let i = 0; i < 300; i++) {
    rollup.add(`s${i}`, { name: "g", type: "gauge", value: i, labels: {}, at }, at, i);
  }
  assert.ok(rollup.size > 5000);
  await commitRollup(kv, rollup);
  for (const i of [0, 150, 299]) {
    assert.equal(
      (await kv.get<{ value: number }>(metricTotalKey(`s${i}`, "last"))).value?.value,
      i,
    );
  }
});

Deno.test("sweepExpiredBuckets() deletes buckets past retention and keeps the rest", async () => {
  using kv = await Deno.openKv(":memory:");
  await kv.set(metricSeriesKey("s"), {
    id: "s",
    name: "g",
    type: "counter",
    labels: {},
    createdAt: 0,
  });
  const now = Date.now();
  const old10s = now - 2 * 86_400_000;
  const recent = now - 60_000;
  await kv.set(
    metricBucketKey("10s", "s", old10s - (old10s % 10_000), "count"),
    new Deno.KvU64(1n),
  );
  await kv.set(
    metricBucketKey("10s", "s", recent - (recent % 10_000), "count"),
    new Deno.KvU64(1n),
  );
  await kv.set(metricBucketKey("1m", "s", old10s - (old10s % 60_000), "count"), new Deno.KvU64(1n));
  assert.equal(await sweepExpiredBuckets(kv, 90, now), 1);
  const left = [];
  for await (const e of kv.list({ prefix: ["metric_buckets_10s"] })) left.push(e.key[2]);
  assert.deepEqual(left, [recent - (recent % 10_000)]);
  assert.equal(
    (await kv.get(metricBucketKey("1m", "s", old10s - (old10s % 60_000), "count"))).versionstamp !==
      null,
    true,
  );
});

Deno.test("commitRollup() with announce names every changed 10s bucket in feed events that land with the data, each far under KV's 64 KiB", async () => {
  using kv = await Deno.openKv(":memory:");
  const rollup = new Rollup(90);
  const at = Date.now();
  const t = at - (at % 10_000);
  // 2,000 series with ids as long as seriesId() makes (32 hex): several commit chunks.
  const id = (i: number) => `${String(i).padStart(4, "0")}${"f".repeat(28)}`;
  for (let i = 0; i < 2000; i++) {
    rollup.add(id(i), { name: "c", type: "counter", value: 1, labels: {}, at }, at, i);
  }
  const local: [string, number][] = [];
  await commitRollup(kv, rollup, { origin: "me", committed: (b) => local.push(...b) });
  const events = [];
  for await (const e of kv.list<FeedEvent>({ prefix: feedEventsPrefix() })) events.push(e.value);
  assert.ok(events.length > 1, `${events.length} events`);
  const announced = events.flatMap((e) => {
    assert.equal(e.kind, "metrics");
    assert.equal(e.origin, "me");
    const bytes = new TextEncoder().encode(JSON.stringify(e)).length;
    assert.ok(bytes < 40_000, `an event of ${bytes} bytes`);
    return (e.data as { buckets: [string, number][] }).buckets;
  });
  const expected = Array.from({ length: 2000 }, (_, i) => `${id(i)}@${t}`).sort();
  // A bucket whose keys straddle two chunks is named by both commits, as both changed it.
  const names = (list: [string, number][]) =>
    [...new Set(list.map(([s, b]) => `${s}@${b}`))].sort();
  assert.deepEqual(names(announced), expected);
  assert.deepEqual(names(local), expected);
  // Without announce nothing is appended.
  using other = await Deno.openKv(":memory:");
  await commitRollup(other, rollup);
  assert.equal((await Array.fromAsync(other.list({ prefix: feedEventsPrefix() }))).length, 0);
});
