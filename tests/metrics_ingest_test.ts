import assert from "node:assert/strict";
import { startTestServer } from "./helpers.ts";
import { createKey, getJson, gzip, push, seriesOf, twoInstances } from "./metrics_fixtures.ts";

Deno.test("POST /api/v1/metrics stores counters, gauges and histograms that read back exactly", async () => {
  await using server = await startTestServer();
  const key = (await createKey(server, "ingest")).key;
  const read = (await createKey(server, "read")).key;
  const now = Date.now();
  const t = now - (now % 60_000);
  const at = (i: number) => Math.min(now, t + i);
  const res = await push(server.url, key, {
    points: [
      { name: "orders", type: "counter", value: 2, labels: { shop: "eu" } },
      { name: "orders", type: "counter", value: 3.5, labels: { shop: "eu" } },
      { name: "orders", type: "counter", value: 1, labels: { shop: "us" } },
      { name: "queue.depth", type: "gauge", value: 7, at: at(3) },
      { name: "queue.depth", type: "gauge", value: -2.25, at: at(1) },
      { name: "queue.depth", type: "gauge", value: 4, at: at(2) },
    ],
  });
  assert.deepEqual(res, { status: 200, body: { accepted: 6, rejected: [] }, headers: res.headers });
  const orders = await seriesOf(server.url, read, "orders");
  assert.deepEqual(
    orders.map((s) => [s.type, s.labels, s.last]).sort((a, b) => a[2] - b[2]),
    [["counter", { shop: "us" }, 1], ["counter", { shop: "eu" }, 5.5]],
  );
  const [depth] = await seriesOf(server.url, read, "queue.depth");
  assert.equal(depth.last, 7);
  assert.equal(depth.lastAt, at(3));
  assert.equal(depth.firstAt, at(1));
  const q = await getJson(server.url, `/api/v1/metrics/query?name=queue.depth&step=1m`, read);
  assert.equal(q.status, 200);
  assert.equal(q.body.type, "gauge");
  assert.deepEqual(q.body.series[0].points, [{
    t,
    last: 7,
    min: -2.25,
    max: 7,
    avg: (7 - 2.25 + 4) / 3,
    count: 3,
  }]);
  const c = await getJson(server.url, `/api/v1/metrics/query?name=orders&label.shop=eu`, read);
  assert.equal(c.body.series.length, 1);
  assert.deepEqual(c.body.series[0].labels, { shop: "eu" });
  assert.equal(
    c.body.series[0].points.reduce((n: number, p: { sum: number }) => n + p.sum, 0),
    5.5,
  );
});

Deno.test("histogram percentiles read from the bins are within 2 % of the exact ones", async () => {
  await using server = await startTestServer();
  const key = (await createKey(server, "ingest")).key;
  const now = Date.now();
  const values: number[] = [];
  // A long-tailed latency-like spread, over several pushes.
  for (let i = 0; i < 2000; i++) values.push(Math.round(Math.exp(Math.random() * 8) * 1000) / 1000);
  for (let i = 0; i < values.length; i += 500) {
    const points = values.slice(i, i + 500).map((value) => ({
      name: "latency_ms",
      type: "histogram",
      value,
      at: now,
    }));
    assert.equal((await push(server.url, key, { points })).body.accepted, 500);
  }
  const q = await getJson(
    server.url,
    `/api/v1/metrics/query?name=latency_ms&step=1d&from=${now - 86_400_000}`,
    key.replace(/.*/, await server.mint()),
  );
  const [point] = q.body.series[0].points;
  const sorted = [...values].sort((a, b) => a - b);
  assert.equal(point.count, 2000);
  assert.equal(point.min, sorted[0]);
  assert.equal(point.max, sorted[sorted.length - 1]);
  assert.ok(Math.abs(point.sum - values.reduce((a, b) => a + b, 0)) < 0.01 * 2000);
  for (const [field, q] of [["p50", 0.5], ["p90", 0.9], ["p99", 0.99]] as const) {
    const exact = sorted[Math.floor(q * (sorted.length - 1))];
    assert.ok(
      Math.abs(point[field] - exact) <= 0.02 * exact,
      `${field}: ${point[field]} vs exact ${exact}`,
    );
  }
});

Deno.test("bad points are rejected one by one with index and reason; the good ones are stored", async () => {
  await using server = await startTestServer();
  const key = (await createKey(server, "ingest")).key;
  const now = Date.now();
  const good = { name: "ok_total", type: "counter", value: 1 };
  const points: unknown[] = [
    good,
    "not an object",
    { name: "x", type: "summary", value: 1 },
    { name: "x", type: "gauge", value: "12" },
    { name: "x", type: "gauge", value: null },
    { name: "x", type: "gauge" },
    { name: "x", type: "counter", value: -1 },
    { name: "x", type: "gauge", value: 1e13 },
    { name: "9starts_with_digit", type: "gauge", value: 1 },
    { name: "has space", type: "gauge", value: 1 },
    { name: "a".repeat(129), type: "gauge", value: 1 },
    { name: "", type: "gauge", value: 1 },
    { name: 12, type: "gauge", value: 1 },
    {
      name: "x",
      type: "gauge",
      value: 1,
      labels: Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`k${i}`, "v"])),
    },
    { name: "x", type: "gauge", value: 1, labels: { "bad-key": "v" } },
    { name: "x", type: "gauge", value: 1, labels: { k: 1 } },
    { name: "x", type: "gauge", value: 1, labels: { k: "" } },
    { name: "x", type: "gauge", value: 1, labels: { k: "v".repeat(129) } },
    { name: "x", type: "gauge", value: 1, labels: { ["k".repeat(65)]: "v" } },
    { name: "x", type: "gauge", value: 1, labels: ["v"] },
    { name: "x", type: "gauge", value: 1, at: now - 25 * 3_600_000 },
    { name: "x", type: "gauge", value: 1, at: now + 6 * 60_000 },
    { name: "x", type: "gauge", value: 1, at: "yesterday" },
    { name: "x", type: "gauge", value: 1, at: 1.5 },
    good,
  ];
  const res = await push(
    server.url,
    key,
    JSON.stringify({ points }).replace('"value":null', '"value":NaN'.replace("NaN", "null")),
  );
  assert.equal(res.status, 200);
  assert.equal(res.body.accepted, 2);
  const reasons = res.body.rejected.map((
    r: { index: number; reason: string },
  ) => [r.index, r.reason]);
  assert.deepEqual(reasons, [
    [1, "invalid_value"],
    [2, "invalid_value"],
    [3, "invalid_value"],
    [4, "invalid_value"],
    [5, "invalid_value"],
    [6, "invalid_value"],
    [7, "invalid_value"],
    [8, "invalid_name"],
    [9, "invalid_name"],
    [10, "invalid_name"],
    [11, "invalid_name"],
    [12, "invalid_name"],
    [13, "invalid_labels"],
    [14, "invalid_labels"],
    [15, "invalid_labels"],
    [16, "invalid_labels"],
    [17, "invalid_labels"],
    [18, "invalid_labels"],
    [19, "invalid_labels"],
    [20, "out_of_range_time"],
    [21, "out_of_range_time"],
    [22, "out_of_range_time"],
    [23, "out_of_range_time"],
  ]);
  for (const r of res.body.rejected) assert.match(r.message, /^Cannot store the point as /);
  const [ok] = await seriesOf(server.url, key.replace(/.*/, await server.mint()), "ok_total");
  assert.equal(ok.last, 2);
  assert.equal((await seriesOf(server.url, await server.mint(), "x")).length, 0);
  const nullLabels = await push(server.url, key, {
    points: [{ name: "x", type: "gauge", value: 1, labels: null }],
  });
  assert.deepEqual(nullLabels.body.rejected.map((r: { reason: string }) => r.reason), [
    "invalid_labels",
  ]);
});

Deno.test("NaN and Infinity in the JSON text are not JSON: 400 invalid_request", async () => {
  await using server = await startTestServer();
  const key = (await createKey(server, "ingest")).key;
  for (
    const body of [
      '{"points":[{"name":"x","type":"gauge","value":NaN}]}',
      '{"points":[{"name":"x","type":"gauge","value":Infinity}]}',
      "{",
      "",
      "[]",
      "null",
      '{"points":{}}',
      '{"point":[]}',
      "\u0000\u0001",
    ]
  ) {
    const res = await push(server.url, key, body);
    assert.equal(res.status, 400, body);
    assert.equal(res.body.error, "invalid_request");
    assert.equal(typeof res.body.message, "string");
  }
  // Large exponents overflow to Infinity when parsed: a rejected point, not a stored one.
  const res = await push(server.url, key, '{"points":[{"name":"x","type":"gauge","value":1e400}]}');
  assert.deepEqual(res.body.rejected.map((r: { reason: string }) => r.reason), ["invalid_value"]);
});

Deno.test("413 for 5,001 points, for a raw body over 1 MiB, and for a gzip body over 1 MiB once inflated", async () => {
  await using server = await startTestServer();
  const key = (await createKey(server, "ingest")).key;
  const many = Array.from({ length: 5001 }, () => ({ name: "n", type: "counter", value: 1 }));
  const tooMany = await push(server.url, key, { points: many });
  assert.equal(tooMany.status, 413);
  assert.equal(tooMany.body.error, "too_large");
  const exactly = await push(server.url, key, { points: many.slice(1) });
  assert.equal(exactly.status, 200);
  assert.equal(exactly.body.accepted, 5000);
  const big = JSON.stringify({ points: [], pad: "x".repeat(1024 * 1024) });
  assert.equal((await push(server.url, key, big)).status, 413);
  // A gzip bomb: 64 MiB of spaces inflate from about 64 KiB; reading stops at 1 MiB.
  const bomb = await gzip(new Uint8Array(64 * 1024 * 1024).fill(32));
  assert.ok(bomb.byteLength < 1024 * 1024);
  const started = performance.now();
  const bombed = await push(server.url, key, bomb, { "Content-Encoding": "gzip" });
  assert.equal(bombed.status, 413);
  assert.ok(performance.now() - started < 5000);
  const zipped = await push(
    server.url,
    key,
    await gzip(JSON.stringify({ points: many.slice(1, 11) })),
    {
      "Content-Encoding": "gzip",
    },
  );
  assert.deepEqual(zipped.body, { accepted: 10, rejected: [] });
  assert.equal(
    (await push(server.url, key, new Uint8Array([31, 139, 8, 0, 1, 2]), {
      "Content-Encoding": "gzip",
    })).status,
    400,
  );
  assert.equal((await push(server.url, key, "{}", { "Content-Encoding": "br" })).status, 415);
});

Deno.test("past the per-key push limit: 429 with Retry-After, other keys unaffected", async () => {
  await using server = await startTestServer({}, {
    limits: { metricsPushesPerKey: 3, metricsPushWindowMs: 60_000 },
  });
  const key = (await createKey(server, "ingest")).key;
  const other = (await createKey(server, "ingest")).key;
  const body = { points: [{ name: "c", type: "counter", value: 1 }] };
  for (let i = 0; i < 3; i++) assert.equal((await push(server.url, key, body)).status, 200);
  const limited = await push(server.url, key, body);
  assert.equal(limited.status, 429);
  assert.equal(limited.body.error, "rate_limited");
  const retry = Number(limited.headers.get("retry-after"));
  assert.ok(retry >= 1 && retry <= 60, `Retry-After ${retry}`);
  assert.equal((await push(server.url, other, body)).status, 200);
  const [c] = await seriesOf(server.url, await server.mint(), "c");
  assert.equal(c.last, 4);
});

Deno.test("50 concurrent pushes of counter increments sum exactly", async () => {
  await using server = await startTestServer();
  const key = (await createKey(server, "ingest")).key;
  const pushes = Array.from({ length: 50 }, (_, i) =>
    push(server.url, key, {
      points: Array.from(
        { length: 20 },
        (_, j) => ({
          name: "hits",
          type: "counter",
          value: i + j / 10,
          labels: { p: String(j % 3) },
        }),
      ),
    }));
  const results = await Promise.all(pushes);
  for (const r of results) assert.deepEqual(r.body, { accepted: 20, rejected: [] });
  let expected = 0;
  for (let i = 0; i < 50; i++) for (let j = 0; j < 20; j++) expected += i + j / 10;
  const series = await seriesOf(server.url, await server.mint(), "hits");
  const total = series.reduce((n, s) => n + s.last, 0);
  assert.equal(Math.round(total * 1000), Math.round(expected * 1000));
  const q = await getJson(
    server.url,
    "/api/v1/metrics/query?name=hits&step=10s",
    await server.mint(),
  );
  const bucketSum = q.body.series.flatMap((s: { points: { sum: number }[] }) => s.points).reduce(
    (n: number, p: { sum: number }) => n + p.sum,
    0,
  );
  assert.equal(Math.round(bucketSum * 1000), Math.round(expected * 1000));
});

Deno.test("two instances on one KV file incrementing one counter concurrently sum exactly", async () => {
  await using two = await twoInstances();
  const { a, b } = two;
  const key = (await createKey(a, "ingest")).key;
  const body = (v: number) => ({
    points: [{ name: "jobs", type: "counter", value: v }, {
      name: "depth",
      type: "gauge",
      value: v,
      at: Date.now() - 1000 + v,
    }],
  });
  // Waves of concurrent pushes, so that the two instances' commits interleave many times.
  for (let wave = 0; wave < 15; wave++) {
    const results = await Promise.all(
      Array.from({ length: 4 }, (_, j) => {
        const i = wave * 4 + j;
        return push(i % 2 ? a.url : b.url, key, body(i + 1));
      }),
    );
    for (const r of results) assert.equal(r.status, 200, JSON.stringify(r.body));
  }
  const token = await a.mint();
  for (const server of [a, b]) {
    const [jobs] = await seriesOf(server.url, token, "jobs");
    assert.equal(jobs.last, (60 * 61) / 2);
    const [depth] = await seriesOf(server.url, token, "depth");
    // The latest `at` wins, whichever instance and commit order brought it.
    assert.equal(depth.last, 60);
  }
});

Deno.test("the series cap holds under 20 concurrent pushes of new series on two instances", async () => {
  const env = { METRICS_MAX_SERIES: "5" };
  await using two = await twoInstances(env);
  const { a, b } = two;
  const key = (await createKey(a, "ingest")).key;
  const results = await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      push(i % 2 ? a.url : b.url, key, {
        points: [{
          name: "tenant_requests",
          type: "counter",
          value: 1,
          labels: { tenant: `t${i}` },
        }],
      })),
  );
  const accepted = results.reduce((n, r) => n + r.body.accepted, 0);
  const refused = results.flatMap((r) => r.body.rejected);
  assert.equal(accepted, 5);
  assert.equal(refused.length, 15);
  for (const r of refused) assert.equal(r.reason, "too_many_series");
  const series = await seriesOf(a.url, await a.mint(), "tenant_requests");
  assert.equal(series.length, 5);
  // An existing series still takes points at the cap.
  const again = await push(b.url, key, {
    points: [{ name: "tenant_requests", type: "counter", value: 1, labels: series[0].labels }],
  });
  assert.equal(again.body.accepted, 1);
});

Deno.test("a name keeps its first type, also when pushes of two types race on two instances", async () => {
  await using two = await twoInstances();
  const { a, b } = two;
  const key = (await createKey(a, "ingest")).key;
  const types = ["counter", "gauge", "histogram"];
  const results = await Promise.all(
    Array.from({ length: 21 }, (_, i) =>
      push(i % 2 ? a.url : b.url, key, {
        points: [{ name: "contested", type: types[i % 3], value: 1, labels: { i: String(i) } }],
      })),
  );
  const winners = new Set<string>();
  results.forEach((r, i) => {
    if (r.body.accepted === 1) winners.add(types[i % 3]);
    else assert.equal(r.body.rejected[0].reason, "type_conflict");
  });
  assert.equal(winners.size, 1);
  const [winner] = winners;
  const series = await seriesOf(a.url, await a.mint(), "contested");
  assert.ok(series.length >= 7);
  for (const s of series) assert.equal(s.type, winner);
  const late = await push(a.url, key, {
    points: [{ name: "contested", type: types.find((t) => t !== winner), value: 1 }],
  });
  assert.equal(late.body.rejected[0].reason, "type_conflict");
});

Deno.test("a gauge's last is the latest at, whatever order two instances commit in", async () => {
  await using two = await twoInstances();
  const { a, b } = two;
  const key = (await createKey(a, "ingest")).key;
  const base = Date.now() - 60_000;
  const values = Array.from({ length: 48 }, (_, i) => i + 1);
  // The latest value is pushed first, the rest in shuffled order after it.
  const order = [48, ...values.slice(0, 47).sort(() => Math.random() - 0.5)];
  for (let wave = 0; wave < order.length; wave += 8) {
    const results = await Promise.all(
      order.slice(wave, wave + 8).map((v, j) =>
        push(j % 2 ? a.url : b.url, key, {
          points: [{ name: "temperature", type: "gauge", value: v, at: base + v * 10 }],
        })
      ),
    );
    for (const r of results) assert.equal(r.body.accepted, 1);
  }
  const [series] = await seriesOf(a.url, await a.mint(), "temperature");
  assert.equal(series.last, 48);
  assert.equal(series.lastAt, base + 480);
  // Ties on `at`: the one received last wins.
  await push(a.url, key, {
    points: [{ name: "temperature", type: "gauge", value: 1, at: base + 480 }],
  });
  await push(b.url, key, {
    points: [{ name: "temperature", type: "gauge", value: 2, at: base + 480 }],
  });
  assert.equal((await seriesOf(a.url, await a.mint(), "temperature"))[0].last, 2);
});

Deno.test("within one push a series keeps its name's type: only the points of another type are refused", async () => {
  await using server = await startTestServer();
  const key = (await createKey(server, "ingest")).key;
  const first = await push(server.url, key, {
    points: [
      { name: "mixed", type: "gauge", value: 1 },
      { name: "mixed", type: "counter", value: 1 },
      { name: "mixed", type: "gauge", value: 2 },
    ],
  });
  assert.equal(first.body.accepted, 2);
  assert.deepEqual(
    first.body.rejected.map((r: { index: number; reason: string }) => [r.index, r.reason]),
    [[1, "type_conflict"]],
  );
  // The name is a gauge now: a push whose first point of the series is a counter still stores its gauges.
  const second = await push(server.url, key, {
    points: [
      { name: "mixed", type: "counter", value: 1 },
      { name: "mixed", type: "gauge", value: 3 },
    ],
  });
  assert.equal(second.body.accepted, 1);
  assert.deepEqual(second.body.rejected.map((r: { index: number }) => r.index), [0]);
  const [mixed] = await seriesOf(server.url, await server.mint(), "mixed");
  assert.deepEqual([mixed.type, mixed.last], ["gauge", 3]);
});
