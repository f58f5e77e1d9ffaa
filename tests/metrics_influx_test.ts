import assert from "node:assert/strict";
import { InfluxDB, Point } from "@influxdata/influxdb-client";
import { startTestServer } from "./helpers.ts";
import { createKey, gzip, seriesOf } from "./metrics_fixtures.ts";

/** POSTs line protocol to /api/v2/write with an InfluxDB-style Token header. */
async function write(
  base: URL,
  key: string,
  body: string | Uint8Array,
  query = "",
  headers: Record<string, string> = {},
) {
  const res = await fetch(new URL(`/api/v2/write${query}`, base), {
    method: "POST",
    headers: { Authorization: `Token ${key}`, "Content-Type": "text/plain", ...headers },
    body: body as BodyInit,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

Deno.test("the official InfluxDB client writes gauges and counters through /api/v2/write", async () => {
  await using server = await startTestServer();
  const key = (await createKey(server, "ingest")).key;
  const influx = new InfluxDB({ url: server.url.origin, token: key });
  // gzipThreshold 0: every batch is compressed, as large batches are in practice.
  const api = influx.getWriteApi("my-org", "my-bucket", "ms", {
    gzipThreshold: 0,
    maxRetries: 0,
  });
  const now = Date.now();
  api.writePoint(
    new Point("cpu").tag("host", "web-1").floatField("usage", 0.25).intField("ticks", 3)
      .timestamp(new Date(now - 2000)),
  );
  api.writePoint(
    new Point("cpu").tag("host", "web-1").floatField("usage", 0.75).intField("ticks", 4)
      .timestamp(new Date(now - 1000)),
  );
  api.writePoint(new Point("up").booleanField("ok", true));
  await api.close();
  const read = await server.mint({ role: "viewer" });
  const [usage] = await seriesOf(server.url, read, "cpu.usage");
  assert.deepEqual([usage.type, usage.labels, usage.last, usage.lastAt], [
    "gauge",
    { host: "web-1" },
    0.75,
    now - 1000,
  ]);
  const [ticks] = await seriesOf(server.url, read, "cpu.ticks");
  assert.deepEqual([ticks.type, ticks.last], ["counter", 7]);
  const [ok] = await seriesOf(server.url, read, "up.ok");
  assert.deepEqual([ok.type, ok.last], ["gauge", 1]);
});

Deno.test("the InfluxDB client sees a bad write as an error naming the line; good lines are stored", async () => {
  await using server = await startTestServer();
  const key = (await createKey(server, "ingest")).key;
  const api = new InfluxDB({ url: server.url.origin, token: key }).getWriteApi("o", "b", "ns", {
    maxRetries: 0,
  });
  api.writeRecords(["good v=1", "bad v=", "good v=2"]);
  await assert.rejects(api.close(), (error: Error & { statusCode?: number; body?: string }) => {
    assert.equal(error.statusCode, 400);
    assert.match(String(error.body), /line 2/);
    return true;
  });
  const [good] = await seriesOf(server.url, await server.mint(), "good.v");
  assert.equal(good.last, 2);
});

Deno.test("POST /api/v2/write: precision, comments, gzip, 204; the first bad line is named in a 400", async () => {
  await using server = await startTestServer();
  const key = (await createKey(server, "ingest")).key;
  const now = Date.now();
  const sec = Math.floor(now / 1000);
  const ok = await write(
    server.url,
    key,
    `# a comment\n\nmem,host=a used=10 ${sec - 10}\nmem,host=a used=12 ${sec}\n`,
    "?org=o&bucket=b&precision=s",
  );
  assert.deepEqual(ok, { status: 204, body: null });
  const read = await server.mint();
  const [mem] = await seriesOf(server.url, read, "mem.used");
  assert.deepEqual([mem.last, mem.lastAt, mem.firstAt], [12, sec * 1000, (sec - 10) * 1000]);

  for (
    const [precision, ts] of [["ns", BigInt(now) * 1_000_000n], ["us", BigInt(now) * 1000n], [
      "ms",
      BigInt(now),
    ]] as const
  ) {
    const r = await write(server.url, key, `p_${precision} v=1 ${ts}`, `?precision=${precision}`);
    assert.equal(r.status, 204, `${precision}: ${JSON.stringify(r.body)}`);
    assert.equal((await seriesOf(server.url, read, `p_${precision}.v`))[0].lastAt, now);
  }
  // Default precision is ns: a millisecond timestamp read as ns lies in 1970.
  const old = await write(server.url, key, `p_default v=1 ${now}`);
  assert.equal(old.status, 400);
  assert.match(old.body.message, /^line 1: .*within the last 24 hours/);

  const zipped = await write(server.url, key, await gzip("z v=5i\nz v=6i\n"), "", {
    "Content-Encoding": "gzip",
  });
  assert.equal(zipped.status, 204);
  assert.equal((await seriesOf(server.url, read, "z.v"))[0].last, 11);

  const bad = await write(
    server.url,
    key,
    [
      "ok1 v=1",
      's msg="text",n=2',
      "neg c=-3i",
      "9bad v=1",
      "ok2 v=2",
    ].join("\n"),
  );
  assert.equal(bad.status, 400);
  assert.equal(bad.body.code, "invalid");
  assert.match(bad.body.message, /^line 2: .*string/);
  // Good lines, and the numeric field of the line with a string, are stored.
  for (const name of ["ok1.v", "ok2.v", "s.n"]) {
    assert.equal((await seriesOf(server.url, read, name)).length, 1, name);
  }
  for (const name of ["neg.c", "9bad.v", "s.msg"]) {
    assert.equal((await seriesOf(server.url, read, name)).length, 0, name);
  }
  const badPrecision = await write(server.url, key, "x v=1", "?precision=h");
  assert.deepEqual([badPrecision.status, badPrecision.body.code], [400, "invalid"]);
  const parse = await write(server.url, key, "x v=1\nx v=oops\n");
  assert.equal(parse.status, 400);
  assert.match(parse.body.message, /^line 2: /);
  const huge = await write(server.url, key, "x v=1\n".repeat(200_000));
  assert.equal(huge.status, 413);
  const bomb = await write(server.url, key, await gzip("x v=1\n".repeat(400_000)), "", {
    "Content-Encoding": "gzip",
  });
  assert.equal(bomb.status, 413);
  const many = await write(server.url, key, "x v=1\n".repeat(5001));
  assert.equal(many.status, 413);
  const readKey = (await createKey(server, "read")).key;
  assert.equal((await write(server.url, readKey, "x v=1")).status, 403);
  assert.equal((await write(server.url, "lk_" + "B".repeat(43), "x v=1")).status, 401);
});
