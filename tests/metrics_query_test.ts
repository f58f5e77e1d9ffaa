import assert from "node:assert/strict";
import { queryMetric } from "../lib/metrics/query.ts";
import { eventually, freePort, startTestServer } from "./helpers.ts";
import { createKey, getJson, push } from "./metrics_fixtures.ts";

Deno.test("/api/v1/metrics/query filters by labels and aligns buckets to the step, oldest first", async () => {
  await using server = await startTestServer();
  const key = (await createKey(server, "ingest")).key;
  const read = (await createKey(server, "read")).key;
  const now = Date.now();
  const hour = now - (now % 3_600_000);
  const base = hour - 3_600_000; // a whole past hour, so every point lies in it
  const points = [];
  for (let i = 0; i < 6; i++) {
    for (const region of ["eu", "us"]) {
      points.push({
        name: "req",
        type: "counter",
        value: i + 1,
        labels: { region, app: "shop" },
        at: base + i * 600_000 + 5_000,
      });
    }
  }
  points.push({
    name: "req",
    type: "counter",
    value: 100,
    labels: { region: "eu", app: "admin" },
    at: base + 5_000,
  });
  assert.equal((await push(server.url, key, { points })).body.accepted, 13);
  const q = (query: string) => getJson(server.url, `/api/v1/metrics/query?${query}`, read);

  const tenMin = await q(
    `name=req&label.region=eu&label.app=shop&step=1m&from=${base}&to=${base + 3_599_999}`,
  );
  assert.equal(tenMin.status, 200);
  assert.equal(tenMin.body.name, "req");
  assert.equal(tenMin.body.type, "counter");
  assert.equal(tenMin.body.step, "1m");
  assert.equal(tenMin.body.series.length, 1);
  assert.deepEqual(tenMin.body.series[0].labels, { region: "eu", app: "shop" });
  assert.deepEqual(
    tenMin.body.series[0].points,
    Array.from({ length: 6 }, (_, i) => ({ t: base + i * 600_000, sum: i + 1, count: 1 })),
  );
  const hourly = await q(`name=req&label.region=eu&step=1h&from=${base}&to=${base}`);
  assert.deepEqual(
    hourly.body.series.map((
      s: { labels: { app: string }; points: unknown },
    ) => [s.labels.app, s.points]).sort(),
    [["admin", [{ t: base, sum: 100, count: 1 }]], ["shop", [{ t: base, sum: 21, count: 6 }]]],
  );
  // `from` past a bucket's start leaves that bucket out.
  const later = await q(`name=req&label.region=us&step=1h&from=${base + 1}&to=${base + 3_599_999}`);
  assert.deepEqual(later.body.series[0].points, []);
  const none = await q(`name=req&label.region=asia&from=${base}&to=${now}`);
  assert.deepEqual(none.body.series, []);
});

Deno.test("/api/v1/metrics/query: 404 for an unknown name, 400 with issues for bad parameters and over 2,000 buckets", async () => {
  await using server = await startTestServer();
  const key = (await createKey(server, "ingest")).key;
  await push(server.url, key, { points: [{ name: "known", type: "gauge", value: 1 }] });
  const token = await server.mint({ role: "viewer" });
  const q = (query: string) => getJson(server.url, `/api/v1/metrics/query?${query}`, token);
  const unknown = await q("name=unknown_metric");
  assert.equal(unknown.status, 404);
  assert.equal(unknown.body.error, "not_found");
  assert.match(unknown.body.message, /unknown_metric/);
  const now = Date.now();
  for (
    const [query, path] of [
      ["", "name"],
      ["name=bad%20name", "name"],
      ["name=known&step=5m", "step"],
      ["name=known&from=yesterday", "from"],
      ["name=known&to=-5", "to"],
      [`name=known&from=${now}&to=${now - 1}`, "from"],
      [`name=known&step=10s&from=${now - 20_010_000}&to=${now}`, "step"],
      ["name=known&label.bad-key=v", "label"],
      [`name=known&label.k=${"v".repeat(129)}`, "label"],
      ["name=known&limit=5", "limit"],
      ["name=known&name=other", "name"],
    ]
  ) {
    const res = await q(query);
    assert.equal(res.status, 400, query);
    assert.equal(res.body.error, "invalid_request", query);
    assert.ok(
      res.body.issues.some((i: { path: string }) => i.path === path),
      `${query}: ${JSON.stringify(res.body)}`,
    );
  }
  // Exactly 2,000 buckets is allowed.
  const to = now - (now % 10_000);
  assert.equal((await q(`name=known&step=10s&from=${to - 1999 * 10_000}&to=${to}`)).status, 200);
  assert.equal((await getJson(server.url, "/api/v1/metrics/query?name=known", "")).status, 401);
});

Deno.test("queryMetric() leaves out buckets past their retention even while KV still holds them", async () => {
  await using server = await startTestServer({ METRICS_RETENTION_DAYS: "2" });
  const key = (await createKey(server, "ingest")).key;
  const at = Date.now() - 60_000;
  await push(server.url, key, { points: [{ name: "kept", type: "gauge", value: 3, at }] });
  const kv = server.deps.kv;
  const query = (step: "10s" | "1m" | "1h" | "1d", now: number) =>
    queryMetric(kv, { name: "kept", labels: {}, from: at - 86_400_000, to: now, step }, {
      retentionDays: 2,
      now,
    });
  for (const step of ["10s", "1m", "1h", "1d"] as const) {
    assert.equal((await query(step, Date.now()))!.series[0].points.length, 1, step);
  }
  // A day and a bit later, the 10s bucket is past its 24 h; the 1m one is kept 7 days.
  const dayLater = Date.now() + 86_400_000 + 30_000;
  assert.equal((await query("10s", dayLater))!.series[0].points.length, 0);
  assert.equal((await query("1m", dayLater))!.series[0].points.length, 1);
  const weekLater = Date.now() + 8 * 86_400_000;
  assert.equal((await query("1m", weekLater))!.series[0].points.length, 0);
  // 1h and 1d follow METRICS_RETENTION_DAYS (2 here).
  assert.equal((await query("1h", Date.now() + 86_400_000))!.series[0].points.length, 1);
  assert.equal((await query("1h", Date.now() + 3 * 86_400_000))!.series[0].points.length, 0);
  assert.equal((await query("1d", Date.now() + 4 * 86_400_000))!.series[0].points.length, 0);
});

Deno.test("GET /metrics is the Prometheus text format: counter _total, gauge last, histogram summary", async () => {
  await using server = await startTestServer();
  const key = (await createKey(server, "ingest")).key;
  const now = Date.now();
  await push(server.url, key, {
    points: [
      { name: "http.requests", type: "counter", value: 3, labels: { route: '/a"b' } },
      { name: "http.requests", type: "counter", value: 4, labels: { route: '/a"b' } },
      { name: "queue:depth", type: "gauge", value: 9.5 },
      ...[10, 20, 30, 40, 50].map((value) => ({
        name: "lat-ms",
        type: "histogram",
        value,
        at: now,
      })),
    ],
  });
  const res = await fetch(new URL("/metrics", server.url), {
    headers: { Authorization: `Bearer ${(await createKey(server, "read")).key}` },
  });
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type")!, /^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  assert.match(
    text,
    /^# TYPE http_requests_total counter\nhttp_requests_total\{route="\/a\\"b"\} 7$/m,
  );
  assert.match(text, /^# TYPE queue:depth gauge\nqueue:depth 9\.5$/m);
  assert.match(text, /^# TYPE lat_ms summary$/m);
  const quantile = (q: string) =>
    Number(new RegExp(`^lat_ms\\{quantile="${q}"\\} (\\S+)$`, "m").exec(text)![1]);
  assert.ok(Math.abs(quantile("0.5") - 30) <= 0.3);
  // The value of rank q * (count - 1): 40 of the five.
  assert.ok(Math.abs(quantile("0.99") - 40) <= 0.4);
  assert.match(text, /^lat_ms_sum 150$/m);
  assert.match(text, /^lat_ms_count 5$/m);
  // A series label named like the summary's own is renamed, not duplicated.
  await push(server.url, key, {
    points: [{
      name: "q_hist",
      type: "histogram",
      value: 2,
      labels: { quantile: "mine" },
      at: now,
    }],
  });
  const again = await (await fetch(new URL("/metrics", server.url), {
    headers: { Authorization: `Bearer ${await server.mint()}` },
  })).text();
  assert.match(again, /^q_hist\{exported_quantile="mine",quantile="0\.5"\} 2$/m);
});

const PROMETHEUS = Deno.env.get("PROMETHEUS_PATH") ?? "/usr/bin/prometheus";
const hasPrometheus = await Deno.stat(PROMETHEUS).then(() => true, () => false);
if (!hasPrometheus) {
  console.warn(
    `\n${"!".repeat(72)}\n!! SKIPPED: prometheus not installed (not at ${PROMETHEUS}).\n` +
      `!! Install it (apt-get install prometheus) or set PROMETHEUS_PATH.\n${"!".repeat(72)}\n`,
  );
}

Deno.test({
  name: "a real Prometheus scrapes /metrics with a read key and answers PromQL on it",
  ignore: !hasPrometheus,
}, async () => {
  await using server = await startTestServer();
  const ingest = (await createKey(server, "ingest")).key;
  const read = (await createKey(server, "read")).key;
  await push(server.url, ingest, {
    points: [
      { name: "orders", type: "counter", value: 5, labels: { shop: "eu" } },
      { name: "orders", type: "counter", value: 7, labels: { shop: "eu" } },
      { name: "queue.depth", type: "gauge", value: 42 },
    ],
  });
  const dir = await Deno.makeTempDir({ prefix: "lookout_prom_" });
  const port = freePort();
  await Deno.writeTextFile(`${dir}/key`, read);
  await Deno.writeTextFile(
    `${dir}/prometheus.yml`,
    [
      "global:",
      "  scrape_interval: 1s",
      "scrape_configs:",
      "  - job_name: lookout",
      "    authorization:",
      `      credentials_file: ${dir}/key`,
      "    static_configs:",
      `      - targets: ["127.0.0.1:${server.url.port}"]`,
      "",
    ].join("\n"),
  );
  const child = new Deno.Command(PROMETHEUS, {
    args: [
      `--config.file=${dir}/prometheus.yml`,
      `--storage.tsdb.path=${dir}/data`,
      `--web.listen-address=127.0.0.1:${port}`,
    ],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  try {
    const query = async (promql: string) => {
      const res = await fetch(
        `http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(promql)}`,
      )
        .catch(() => null);
      if (!res?.ok) {
        await res?.body?.cancel();
        return [];
      }
      return (await res.json()).data.result as {
        metric: Record<string, string>;
        value: [number, string];
      }[];
    };
    const orders = await eventually(
      async () => (await query('orders_total{shop="eu"}')).at(0),
      20_000,
      "Prometheus to scrape orders_total",
    );
    assert.equal(orders!.value[1], "12");
    assert.equal(orders!.metric.job, "lookout");
    const [depth] = await query("queue_depth");
    assert.equal(depth.value[1], "42");
    const [up] = await query('up{job="lookout"}');
    assert.equal(up.value[1], "1");
  } finally {
    child.kill("SIGTERM");
    await child.status;
    await stderr;
    await Deno.remove(dir, { recursive: true });
  }
});
