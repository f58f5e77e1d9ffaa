/**
 * Live metrics (CONTRACT 7.4): `metrics` subscribers get `metrics_update`
 * with the changed `10s` buckets, at most about once a second, from every
 * instance. Two `main.ts` processes on one KV file stand in for a
 * deployment: they share nothing but the file.
 */
import assert from "node:assert/strict";
import { type MetricBucket, ServerMessage } from "../shared/protocol.ts";
import { signAccessToken, tokenKey } from "../lib/auth/tokens.ts";
import { randomSecret, startProcess, startTestServer, TestClient } from "./helpers.ts";
import { push } from "./metrics_fixtures.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test({
  name:
    "metrics_update: an increment pushed on process A reaches a viewer subscribed on process B within 2 s, at most once a second",
  sanitizeResources: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "lookout-metrics-live-" });
    const secret = randomSecret();
    const env = { KV_PATH: `${dir}/kv.sqlite3`, JWT_SECRET: secret, LOOKOUT_WORKERS: "1" };
    const a = await startProcess(env);
    const b = await startProcess(env);
    let watcher: TestClient | null = null;
    try {
      const key = await tokenKey(secret, "lookout", "lookout");
      const sign = async (sub: string, role: "admin" | "viewer") =>
        (await signAccessToken(key, { sub, role, ttlS: 600 })).token;
      const admin = await sign("ada", "admin");
      watcher = await TestClient.open(b.wsUrl);
      await watcher.auth(await sign("vic", "viewer"));
      const arrivals: { data: { at: number; points: MetricBucket[] }; at: number }[] = [];
      watcher.ws.addEventListener("message", (e) => {
        const message = ServerMessage.parse(JSON.parse(e.data));
        if (message.type === "metrics_update") {
          arrivals.push({ data: message.data, at: performance.now() });
        }
      });
      watcher.send({ type: "subscribe", events: ["metrics"] });
      assert.deepEqual((await watcher.next("subscribed")).events, ["metrics", "stats"]);

      const name = `live.orders.${crypto.randomUUID().slice(0, 8)}`;
      const at = Date.now();
      const t = at - (at % 10_000);
      const pushed = performance.now();
      const res = await push(a.url, admin, {
        points: [{ name, type: "counter", value: 3, labels: { shop: "eu" }, at }],
      });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.accepted, 1);
      const first = await watcher.next("metrics_update", 2000);
      const ms = performance.now() - pushed;
      assert.ok(ms < 2000, `arrived after ${ms} ms`);
      assert.deepEqual(first.data.points, [
        { name, type: "counter", labels: { shop: "eu" }, t, step: "10s", sum: 3, count: 1 },
      ]);

      // Pushes every 100 ms for 3 s: B sends the bucket's stored totals, at
      // most one message a second.
      const from = arrivals.length;
      for (let i = 0; i < 30; i++) {
        const r = await push(a.url, admin, {
          points: [{ name, type: "counter", value: 1, labels: { shop: "eu" }, at }],
        });
        assert.equal(r.status, 200);
        await sleep(100);
      }
      await sleep(2000);
      const burst = arrivals.slice(from);
      assert.ok(burst.length >= 2, `only ${burst.length} updates for 3 s of pushes`);
      const all = arrivals.map((x) => x.at);
      for (let i = 1; i < all.length; i++) {
        assert.ok(all[i] - all[i - 1] >= 900, `two updates ${all[i] - all[i - 1]} ms apart`);
      }
      const lastPoint = burst[burst.length - 1].data.points.find((p) => p.name === name)!;
      assert.equal(lastPoint.type, "counter");
      assert.deepEqual([lastPoint.sum, lastPoint.count], [33, 31]);
    } finally {
      await watcher?.close();
      for (const p of [a, b]) {
        p.child.kill("SIGTERM");
        await p.status;
      }
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test("metrics_update: gauges and histograms carry the 7.3 fields, and only metrics subscribers get it", async () => {
  await using server = await startTestServer();
  const admin = await server.mint({ role: "admin" });
  const subscriber = await TestClient.open(server.wsUrl);
  const other = await TestClient.open(server.wsUrl);
  try {
    await subscriber.auth(await server.mint({ role: "viewer", sub: "vic" }));
    await other.auth(await server.mint({ role: "viewer", sub: "val" }));
    subscriber.send({ type: "subscribe", events: ["metrics"] });
    await subscriber.next("subscribed");
    const at = Date.now();
    const t = at - (at % 10_000);
    const res = await push(server.url, admin, {
      points: [
        { name: "live.depth", type: "gauge", value: 4, at },
        { name: "live.depth", type: "gauge", value: 8, at },
        { name: "live.latency", type: "histogram", value: 100, at, labels: { route: "/x" } },
      ],
    });
    assert.equal(res.body.accepted, 3);
    const update = await subscriber.next("metrics_update", 2000);
    const byName = Object.fromEntries(update.data.points.map((p) => [p.name, p]));
    assert.deepEqual(byName["live.depth"], {
      name: "live.depth",
      type: "gauge",
      labels: {},
      t,
      step: "10s",
      last: 8,
      min: 4,
      max: 8,
      avg: 6,
      count: 2,
    });
    const h = byName["live.latency"];
    assert.equal(h.type, "histogram");
    assert.deepEqual(h.labels, { route: "/x" });
    if (h.type === "histogram") {
      assert.deepEqual([h.count, h.sum, h.min, h.max], [1, 100, 100, 100]);
      assert.ok(Math.abs(h.p50! - 100) <= 2, `p50 ${h.p50}`);
    }
    await sleep(1500);
    assert.equal(other.received.some((m) => m.type === "metrics_update"), false);
  } finally {
    await subscriber.close();
    await other.close();
  }
});
