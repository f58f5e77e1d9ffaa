/**
 * The ingest path's work, counted rather than timed (issue 11's benchmark
 * goals): what a push costs must not grow with its points where it need
 * only grow with its series, and the shortcuts must not change what is
 * stored.
 */
import assert from "node:assert/strict";
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
