import assert from "node:assert/strict";
import { explainRefusal } from "../shared/close_explanations.ts";
import { listApiKeys } from "../lib/api_keys/store.ts";
import { apiKeyLastUsedKey } from "../lib/store/keys.ts";
import { login, randomPassword, startTestServer } from "./helpers.ts";
import { putUser } from "../lib/auth/users.ts";
import { createKey, getJson, push, tempKvPath, twoInstances } from "./metrics_fixtures.ts";

const point = { points: [{ name: "orders", type: "counter", value: 1 }] };

Deno.test("POST /api/v1/keys answers the key once; the list and KV never hold it", async () => {
  await using server = await startTestServer();
  const created = await createKey(server, "ingest", "checkout");
  assert.match(created.key, /^lk_[A-Za-z0-9_-]{43}$/);
  assert.equal(created.name, "checkout");
  assert.equal(created.scope, "ingest");
  assert.equal(typeof created.id, "string");
  const admin = await server.mint({ role: "admin" });
  const list = await getJson(server.url, "/api/v1/keys", admin);
  assert.equal(list.status, 200);
  assert.deepEqual(list.body, {
    items: [{
      id: created.id,
      name: "checkout",
      scope: "ingest",
      createdAt: created.createdAt,
      lastUsedAt: null,
    }],
  });
  for await (const e of server.deps.kv.list({ prefix: [] })) {
    assert.ok(
      !JSON.stringify(e, (_k, v) => typeof v === "bigint" ? String(v) : v).includes(
        created.key.slice(3),
      ),
    );
  }
});

Deno.test("/api/v1/keys refuses viewers (403), keys (403), no credentials (401) and bad bodies (400)", async () => {
  await using server = await startTestServer();
  const viewer = await server.mint({ role: "viewer" });
  const admin = await server.mint({ role: "admin" });
  const ingest = (await createKey(server, "ingest")).key;
  const read = (await createKey(server, "read")).key;
  for (const credential of [viewer, ingest, read]) {
    assert.equal((await getJson(server.url, "/api/v1/keys", credential)).status, 403);
    const post = await fetch(new URL("/api/v1/keys", server.url), {
      method: "POST",
      headers: { Authorization: `Bearer ${credential}` },
      body: JSON.stringify({ name: "x", scope: "read" }),
    });
    assert.equal(post.status, 403);
    assert.deepEqual(await post.json(), {
      error: "forbidden",
      message:
        "Cannot use this route as it is for admins only: sign in as an admin, or use an admin's access token",
    });
  }
  const none = await fetch(new URL("/api/v1/keys", server.url));
  assert.equal(none.status, 401);
  assert.deepEqual(await none.json(), {
    error: "unauthorized",
    reason: "missing_token",
    message: explainRefusal("missing_token"),
  });
  for (
    const body of [
      "{",
      JSON.stringify({ name: "", scope: "read" }),
      JSON.stringify({ name: "a", scope: "write" }),
      JSON.stringify({ name: "a".repeat(65), scope: "read" }),
      "[]",
    ]
  ) {
    const res = await fetch(new URL("/api/v1/keys", server.url), {
      method: "POST",
      headers: { Authorization: `Bearer ${admin}`, "Content-Type": "application/json" },
      body,
    });
    assert.equal(res.status, 400, body);
    assert.equal((await res.json()).error, "invalid_request");
  }
  const del = await fetch(new URL("/api/v1/keys/01NOSUCHKEY", server.url), {
    method: "DELETE",
    headers: { Authorization: `Bearer ${admin}` },
  });
  assert.equal(del.status, 404);
});

Deno.test("an ingest key pushes but cannot read (403); a read key reads but cannot push (403); neither is an attempt", async () => {
  await using server = await startTestServer();
  const ingest = (await createKey(server, "ingest")).key;
  const read = (await createKey(server, "read")).key;
  const before = (await server.attempts()).length;
  assert.equal((await push(server.url, ingest, point)).status, 200);
  assert.equal((await getJson(server.url, "/api/v1/metrics", ingest)).status, 403);
  assert.equal(
    (await getJson(server.url, "/api/v1/metrics/query?name=orders", ingest)).status,
    403,
  );
  assert.equal((await getJson(server.url, "/metrics", ingest)).status, 403);
  // A key out of its scope is 403 everywhere, the rest of /api/v1 included.
  for (const path of ["/api/v1/stats", "/api/v1/attempts", "/api/v1/nothing"]) {
    for (const k of [ingest, read]) {
      assert.equal((await getJson(server.url, path, k)).status, 403, path);
    }
  }
  const refused = await push(server.url, read, point);
  assert.equal(refused.status, 403);
  assert.deepEqual(refused.body, {
    error: "forbidden",
    message:
      "Cannot push metrics with these credentials: use an API key of scope ingest (deno task key:add NAME --scope ingest) or an admin's access token",
  });
  assert.equal((await getJson(server.url, "/api/v1/metrics", read)).status, 200);
  assert.equal((await getJson(server.url, "/api/v1/metrics/query?name=orders", read)).status, 200);
  assert.equal((await getJson(server.url, "/metrics", read)).status, 200);
  // The Token scheme of InfluxDB clients works too.
  const token = await fetch(new URL("/api/v1/metrics", server.url), {
    method: "POST",
    headers: { Authorization: `Token ${ingest}` },
    body: JSON.stringify(point),
  });
  assert.equal(token.status, 200);
  assert.equal(
    (await server.attempts()).length,
    before,
    "an out-of-scope key made an attempt record",
  );
});

Deno.test("access tokens: admin pushes and scrapes, a viewer reads but cannot push or scrape (403)", async () => {
  await using server = await startTestServer();
  const admin = await server.mint({ role: "admin" });
  const viewer = await server.mint({ role: "viewer", sub: "vic" });
  assert.equal((await push(server.url, admin, point)).status, 200);
  assert.equal((await push(server.url, viewer, point)).status, 403);
  assert.equal((await getJson(server.url, "/api/v1/metrics", viewer)).status, 200);
  assert.equal((await getJson(server.url, "/metrics", viewer)).status, 403);
  assert.equal((await getJson(server.url, "/metrics", admin)).status, 200);
});

Deno.test("failed key authentications are attempts with transport api_key: missing_token, invalid_signature, revoked", async () => {
  await using server = await startTestServer();
  const created = await createKey(server, "ingest", "billing");
  const admin = await server.mint({ role: "admin" });
  const none = await fetch(new URL("/api/v1/metrics", server.url), { method: "POST", body: "{}" });
  assert.equal(none.status, 401);
  assert.deepEqual(await none.json(), {
    error: "unauthorized",
    reason: "missing_token",
    message: explainRefusal("missing_token"),
  });
  let [a] = await server.attempts(1);
  assert.deepEqual([a.transport, a.reason, a.user, a.tokenId, a.outcome], [
    "api_key",
    "missing_token",
    null,
    null,
    "failure",
  ]);

  const unknown = "lk_" + "A".repeat(43);
  const res = await push(server.url, unknown, point);
  assert.deepEqual([res.status, res.body], [401, {
    error: "unauthorized",
    reason: "invalid_signature",
    message: explainRefusal("invalid_signature", "key"),
  }]);
  [a] = await server.attempts(1);
  assert.deepEqual([a.transport, a.reason, a.user, a.tokenId], [
    "api_key",
    "invalid_signature",
    null,
    null,
  ]);

  const del = await fetch(new URL(`/api/v1/keys/${created.id}`, server.url), {
    method: "DELETE",
    headers: { Authorization: `Bearer ${admin}` },
  });
  assert.equal(del.status, 204);
  const revoked = await push(server.url, created.key, point);
  assert.deepEqual([revoked.status, revoked.body], [401, {
    error: "unauthorized",
    reason: "revoked",
    message: explainRefusal("revoked", "key"),
  }]);
  [a] = await server.attempts(1);
  assert.deepEqual([a.transport, a.reason, a.user, a.tokenId], [
    "api_key",
    "revoked",
    "billing",
    created.id,
  ]);
  // The same outside the metrics routes: a revoked or unknown key on /api/v1/stats.
  const stats = await getJson(server.url, "/api/v1/stats", created.key);
  assert.deepEqual([stats.status, stats.body], [401, {
    error: "unauthorized",
    reason: "revoked",
    message: explainRefusal("revoked", "key"),
  }]);
  [a] = await server.attempts(1);
  assert.deepEqual([a.transport, a.reason, a.tokenId], ["api_key", "revoked", created.id]);
  const tokenScheme = await fetch(new URL("/api/v1/attempts", server.url), {
    headers: { Authorization: `Token ${unknown}` },
  });
  assert.equal(tokenScheme.status, 401);
  await tokenScheme.body?.cancel();
  [a] = await server.attempts(1);
  assert.deepEqual([a.transport, a.reason], ["api_key", "invalid_signature"]);
  assert.deepEqual((await getJson(server.url, "/api/v1/keys", admin)).body, { items: [] });
  const again = await fetch(new URL(`/api/v1/keys/${created.id}`, server.url), {
    method: "DELETE",
    headers: { Authorization: `Bearer ${admin}` },
  });
  assert.equal(again.status, 404);
});

Deno.test("a key revoked on one instance is refused on another within 1 s", async () => {
  const limits = { metricsPushesPerKey: 1_000_000 };
  await using two = await twoInstances({}, { limits });
  const { a, b } = two;
  const created = await createKey(a, "ingest");
  // B has the key in its cache.
  assert.equal((await push(b.url, created.key, point)).status, 200);
  const del = await fetch(new URL(`/api/v1/keys/${created.id}`, a.url), {
    method: "DELETE",
    headers: { Authorization: `Bearer ${await a.mint()}` },
  });
  assert.equal(del.status, 204);
  const revokedAt = Date.now();
  let status = 200;
  while (status === 200) {
    status = (await push(b.url, created.key, point)).status;
    assert.ok(Date.now() - revokedAt < 1000, "the revoked key still worked on B after 1 s");
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.equal(status, 401);
  // A refuses it at once.
  assert.equal((await push(a.url, created.key, point)).status, 401);
});

Deno.test("lastUsedAt is kept without a KV write on every request", async () => {
  await using server = await startTestServer();
  const created = await createKey(server, "ingest");
  const kv = server.deps.kv;
  assert.equal((await listApiKeys(kv))[0].lastUsedAt, null);
  const before = Date.now();
  assert.equal((await push(server.url, created.key, point)).status, 200);
  const first = await kv.get<number>(apiKeyLastUsedKey(created.id));
  assert.ok(typeof first.value === "number" && first.value >= before);
  for (let i = 0; i < 5; i++) {
    assert.equal((await push(server.url, created.key, point)).status, 200);
  }
  const later = await kv.get<number>(apiKeyLastUsedKey(created.id));
  assert.equal(
    later.versionstamp,
    first.versionstamp,
    "lastUsedAt was written again within a minute",
  );
  assert.equal((await listApiKeys(kv))[0].lastUsedAt, first.value);
});

Deno.test("deno task key:add prints a key that works; a bad scope exits 2", async () => {
  await using file = await tempKvPath();
  const run = (args: string[]) =>
    new Deno.Command("deno", {
      args: ["task", "-q", "key:add", ...args],
      cwd: new URL("..", import.meta.url),
      env: { KV_PATH: file.path, JWT_SECRET: crypto.randomUUID() + crypto.randomUUID() },
      stdout: "piped",
      stderr: "piped",
    }).output();
  const bad = await run(["svc", "--scope", "write"]);
  assert.equal(bad.code, 2);
  assert.match(new TextDecoder().decode(bad.stderr), /--scope must be ingest or read/);
  const out = await run(["svc", "--scope", "read"]);
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const key = new TextDecoder().decode(out.stdout).trim();
  assert.match(key, /^lk_[A-Za-z0-9_-]{43}$/);
  const kv = await Deno.openKv(file.path);
  try {
    await using server = await startTestServer({}, { kv });
    assert.equal((await getJson(server.url, "/api/v1/metrics", key)).status, 200);
    assert.equal((await push(server.url, key, point)).status, 403);
  } finally {
    kv.close();
  }
});

Deno.test("a raw API key never reaches a log line, KV, or a response but the one that created it", async () => {
  await using file = await tempKvPath();
  const kv = await Deno.openKv(file.path);
  const keys: string[] = [];
  const seen: string[] = [];
  try {
    await using server = await startTestServer({}, { kv });
    const admin = await server.mint();
    for (const scope of ["ingest", "read", "ingest"] as const) {
      keys.push((await createKey(server, scope)).key);
    }
    const record = async (path: string, init: RequestInit) => {
      const res = await fetch(new URL(path, server.url), init);
      seen.push(`${res.status} ${[...res.headers].join(";")} ${await res.text()}`);
    };
    const created = (await getJson(server.url, "/api/v1/keys", admin)).body.items;
    for (const [i, key] of keys.entries()) {
      for (const scheme of ["Bearer", "Token"]) {
        const headers = { Authorization: `${scheme} ${key}` };
        await record("/api/v1/metrics", { method: "POST", headers, body: JSON.stringify(point) });
        await record("/api/v1/metrics", { method: "POST", headers, body: key });
        await record("/api/v2/write", {
          method: "POST",
          headers,
          body: `m,k=${key.slice(3, 20)} v=1\n${key}`,
        });
        await record("/api/v1/metrics", { headers });
        await record("/metrics", { headers });
        await record("/api/v1/keys", { headers });
        await record(`/api/v1/metrics/query?name=orders&x=${key}`, { headers });
      }
      if (i === 0) {
        await record(`/api/v1/keys/${created[0].id}`, {
          method: "DELETE",
          headers: { Authorization: `Bearer ${admin}` },
        });
        await record("/api/v1/metrics", {
          method: "POST",
          headers: { Authorization: `Bearer ${key}` },
          body: "{}",
        });
      }
    }
    await record("/api/v1/keys", { headers: { Authorization: `Bearer ${admin}` } });
    await server.close();
    const dump: string[] = [];
    for await (const e of kv.list({ prefix: [] })) {
      dump.push(
        JSON.stringify(
          [e.key, e.value],
          (_k, v) =>
            typeof v === "bigint" ? String(v) : v instanceof Deno.KvU64 ? String(v.value) : v,
        ),
      );
    }
    assert.ok(server.logs.length > 0 && dump.length > 10 && seen.length > 40);
    assert.ok(dump.some((d) => d.includes('"api_key"')), "no api_key attempt in KV");
    for (const [i, key] of keys.entries()) {
      const secret = key.slice(3);
      for (
        const [where, texts] of [["log", server.logs], ["kv", dump], ["response", seen]] as const
      ) {
        const hit = texts.find((t) => t.includes(secret));
        assert.equal(hit, undefined, `key ${i} found in a ${where}: ${hit?.slice(0, 200)}`);
      }
    }
  } finally {
    kv.close();
  }
});

Deno.test("an IP past its failed attempts gets 429 for bad keys, recorded once; good keys still pass", async () => {
  await using server = await startTestServer({}, { limits: { wsFailuresPerIp: 3 } });
  const good = (await createKey(server, "ingest")).key;
  const bad = () => "lk_" + crypto.randomUUID().replaceAll("-", "").padEnd(43, "x");
  for (let i = 0; i < 3; i++) assert.equal((await push(server.url, bad(), point)).status, 401);
  const limited = await push(server.url, bad(), point);
  assert.equal(limited.status, 429);
  assert.equal(limited.body.error, "rate_limited");
  assert.ok(Number(limited.headers.get("retry-after")) >= 1);
  assert.equal((await push(server.url, bad(), point)).status, 429);
  assert.equal((await push(server.url, good, point)).status, 200);
  const attempts = (await server.attempts(20)).filter((a) => a.transport === "api_key");
  assert.deepEqual(attempts.map((a) => a.reason), [
    "rate_limited",
    "invalid_signature",
    "invalid_signature",
    "invalid_signature",
  ]);
});

Deno.test("an admin's session cookie manages keys from its own origin; a cross-site change is 403", async () => {
  await using server = await startTestServer();
  const password = randomPassword();
  await putUser(server.deps.kv, { name: "ada", role: "admin", password });
  const { cookie } = await login(server.url, "ada", password);
  const own = server.url.origin;
  const post = (origin: string) =>
    fetch(new URL("/api/v1/keys", server.url), {
      method: "POST",
      headers: { Cookie: cookie, Origin: origin, "Content-Type": "application/json" },
      body: JSON.stringify({ name: "from-the-page", scope: "read" }),
    });
  const created = await post(own);
  assert.equal(created.status, 201);
  const { id } = await created.json();
  const foreign = await post("https://evil.example");
  assert.equal(foreign.status, 403);
  assert.equal((await foreign.json()).error, "forbidden");
  const del = await fetch(new URL(`/api/v1/keys/${id}`, server.url), {
    method: "DELETE",
    headers: { Cookie: cookie, "Sec-Fetch-Site": "cross-site" },
  });
  assert.equal(del.status, 403);
  await del.body?.cancel();
  const list = await fetch(new URL("/api/v1/keys", server.url), { headers: { Cookie: cookie } });
  assert.deepEqual((await list.json()).items.map((k: { name: string }) => k.name), [
    "from-the-page",
  ]);
});
