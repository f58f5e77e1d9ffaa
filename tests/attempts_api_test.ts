/**
 * `GET /api/v1/attempts` and `GET /api/v1/stats` over real HTTP against a
 * real server: authentication, every filter, cursor pagination, parameter
 * errors, expiry, and the stats counters.
 */
import * as z from "zod/mini";
import assert from "node:assert/strict";
import { explainRefusal } from "../shared/close_explanations.ts";
import { AttemptLog } from "../lib/attempts/log.ts";
import { Attempt, Stats } from "../shared/protocol.ts";
import {
  attemptInput,
  claims,
  failAuth,
  forge,
  randomSecret,
  startTestServer,
  tempFileKv,
  TestClient,
  type TestServer,
} from "./helpers.ts";

interface Answer {
  status: number;
  headers: Headers;
  // deno-lint-ignore no-explicit-any
  body: any;
}

/** GETs `path` with `Authorization: Bearer token` when a token is given. */
async function get(server: TestServer, path: string, token?: string): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  const res = await fetch(new URL(path, server.url), { headers });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : null };
}

/** GETs `/api/v1/attempts` with `params`, expecting 200; returns the page. */
async function attempts(
  server: TestServer,
  token: string,
  params: Record<string, string | number> = {},
): Promise<{ items: Attempt[]; cursor: string | null }> {
  const qs = new URLSearchParams(
    Object.entries(params).map(([k, v]) => [k, String(v)]),
  ).toString();
  const answer = await get(server, `/api/v1/attempts${qs ? `?${qs}` : ""}`, token);
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  assert.deepEqual(Object.keys(answer.body).sort(), ["cursor", "items"]);
  for (const item of answer.body.items) {
    z.strictObject(Attempt.shape).parse(item);
  }
  return answer.body;
}

/** Walks every page of a query and returns all items in order. */
async function walk(
  server: TestServer,
  token: string,
  params: Record<string, string | number>,
): Promise<{ items: Attempt[]; pages: number }> {
  const items: Attempt[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const page = await attempts(server, token, cursor ? { ...params, cursor } : params);
    assert.ok(page.items.length <= Number(params.limit ?? 50));
    items.push(...page.items);
    cursor = page.cursor;
    pages++;
    assert.ok(pages < 1000, "pagination does not end");
  } while (cursor !== null);
  return { items, pages };
}

/** A file-backed KV in a fresh temp folder; `close` removes it. */
function fileKv(): Promise<{ kv: Deno.Kv; close(): Promise<void> }> {
  return tempFileKv("lookout_api_");
}

const USERS = ["alice", "bob", "zoë o'brien", null] as const;
const IPS = ["10.0.0.1", "10.0.0.2", "2001:db8::7"] as const;
const REASONS = ["ok", "token_expired", "invalid_signature", "bad_origin"] as const;

/**
 * Seeds `n` attempts one second apart, oldest first, ending 10 minutes ago,
 * cycling through users, ips and reasons. Returns them newest first.
 */
async function seed(server: TestServer, n: number): Promise<Attempt[]> {
  const start = Date.now() - 10 * 60_000 - n * 1000;
  const out = await Promise.all(Array.from({ length: n }, (_, i) => {
    const reason = REASONS[i % REASONS.length];
    return server.deps.attempts.record(attemptInput({
      at: start + i * 1000,
      user: USERS[i % USERS.length],
      ip: IPS[i % IPS.length],
      outcome: reason === "ok" ? "success" : "failure",
      reason,
      transport: reason === "bad_origin" ? "upgrade" : "message",
      tokenId: `seed-${i}`,
    }));
  }));
  return out.reverse();
}

const ids = (items: Attempt[]) => items.map((a) => a.id);

Deno.test("GET /api/v1/attempts and /api/v1/stats answer 401 unauthorized without a valid bearer token", async () => {
  const server = await startTestServer();
  try {
    const now = Math.floor(Date.now() / 1000);
    // Each 401 names the reason, as the socket's close does, and what to do next.
    const bad: [string | undefined, string][] = [
      [undefined, "missing_token"],
      ["", "missing_token"],
      ["garbage", "malformed_token"],
      ["a.b.c", "malformed_token"],
      [await forge(claims({ sub: "alice" }), randomSecret()), "invalid_signature"],
      [
        await forge(claims({ sub: "alice", iat: now - 900, exp: now - 300 }), server.secret),
        "token_expired",
      ],
      [await forge(claims({ sub: "alice", aud: "someone-else" }), server.secret), "invalid_claims"],
    ];
    for (const path of ["/api/v1/attempts", "/api/v1/stats"]) {
      for (const [token, reason] of bad) {
        const answer = await get(server, path, token);
        assert.equal(answer.status, 401, `${path} with ${JSON.stringify(token)}`);
        assert.deepEqual(answer.body, {
          error: "unauthorized",
          reason,
          message: explainRefusal(reason),
        });
      }
      // Not a Bearer scheme at all.
      const res = await fetch(new URL(path, server.url), {
        headers: { authorization: `Basic ${btoa("admin:admin")}` },
      });
      assert.equal(res.status, 401);
      assert.deepEqual(await res.json(), {
        error: "unauthorized",
        reason: "missing_token",
        message: explainRefusal("missing_token"),
      });
      // And a real token is let in.
      assert.equal((await get(server, path, await server.mint())).status, 200);
    }
  } finally {
    await server.close();
  }
});

Deno.test("GET /api/v1/attempts serves real WebSocket auth attempts newest first, from a file-backed KV", async () => {
  const store = await fileKv();
  const server = await startTestServer({}, { kv: store.kv });
  const client = await TestClient.open(server.wsUrl);
  try {
    const good = await server.mint({ sub: "bob", role: "viewer" });
    await client.auth(good);
    const forged = await forge(claims({ sub: "eve" }), randomSecret());
    assert.equal(await failAuth(server, forged), "invalid_signature");
    assert.equal(await failAuth(server, "not-a-jwt"), "malformed_token");

    // Each attempt is durable before the client is answered: no waiting here.
    const token = await server.mint();
    const page = await attempts(server, token);
    assert.equal(page.cursor, null);
    assert.equal(page.items.length, 3);
    const [malformed, badSig, ok] = page.items;
    assert.ok(malformed.id > badSig.id && badSig.id > ok.id);
    assert.ok(malformed.at >= badSig.at && badSig.at >= ok.at);

    assert.equal(ok.outcome, "success");
    assert.equal(ok.reason, "ok");
    assert.equal(ok.user, "bob");
    assert.equal(ok.transport, "message");
    assert.equal(ok.ip, "127.0.0.1");
    assert.equal(typeof ok.tokenId, "string");
    assert.ok(ok.tokenId!.length > 0 && !ok.tokenId!.includes("."));

    assert.equal(badSig.outcome, "failure");
    assert.equal(badSig.reason, "invalid_signature");
    // The name in a token whose signature failed is not believed.
    assert.equal(badSig.user, null);
    assert.equal(badSig.tokenId, null);
    assert.equal(malformed.reason, "malformed_token");
    assert.equal(malformed.user, null);

    const text = JSON.stringify(page);
    for (const raw of [good, forged, token]) assert.equal(text.includes(raw), false);
  } finally {
    await client.close();
    await server.close();
    await store.close();
  }
});

Deno.test("GET /api/v1/attempts filters by outcome, reason, ip and user", async () => {
  const server = await startTestServer();
  try {
    const all = await seed(server, 48);
    const token = await server.mint();

    const cases: [Record<string, string>, (a: Attempt) => boolean][] = [
      [{ outcome: "success" }, (a) => a.outcome === "success"],
      [{ outcome: "failure" }, (a) => a.outcome === "failure"],
      [{ reason: "token_expired" }, (a) => a.reason === "token_expired"],
      [{ reason: "ok" }, (a) => a.reason === "ok"],
      [{ reason: "revoked" }, (a) => a.reason === "revoked"],
      [{ ip: "10.0.0.2" }, (a) => a.ip === "10.0.0.2"],
      [{ ip: "2001:db8::7" }, (a) => a.ip === "2001:db8::7"],
      [{ ip: "203.0.113.9" }, () => false],
      [{ user: "bob" }, (a) => a.user === "bob"],
      [{ user: "zoë o'brien" }, (a) => a.user === "zoë o'brien"],
      [{ user: "nobody" }, () => false],
    ];
    for (const [params, keep] of cases) {
      const page = await attempts(server, token, { ...params, limit: 500 });
      const expected = all.filter(keep);
      assert.deepEqual(ids(page.items), ids(expected), JSON.stringify(params));
      assert.equal(page.cursor, null, JSON.stringify(params));
    }
    // Filters not given select everything.
    assert.deepEqual(ids((await attempts(server, token, { limit: 500 })).items), ids(all));
  } finally {
    await server.close();
  }
});

Deno.test("GET /api/v1/attempts filters by since and until in epoch ms, both inclusive", async () => {
  const server = await startTestServer();
  try {
    const all = await seed(server, 40);
    const token = await server.mint();
    const oldest = all[all.length - 1].at;
    const newest = all[0].at;
    const a = all[30].at;
    const b = all[10].at;

    const cases: [Record<string, number>, (x: Attempt) => boolean][] = [
      [{ since: a }, (x) => x.at >= a],
      [{ until: b }, (x) => x.at <= b],
      [{ since: a, until: b }, (x) => x.at >= a && x.at <= b],
      [{ since: a, until: a }, (x) => x.at === a],
      [{ since: a + 1, until: a + 999 }, () => false],
      [{ since: 0 }, () => true],
      [{ since: newest + 1 }, () => false],
      [{ until: oldest - 1 }, () => false],
    ];
    for (const [params, keep] of cases) {
      const page = await attempts(server, token, { ...params, limit: 500 });
      assert.deepEqual(ids(page.items), ids(all.filter(keep)), JSON.stringify(params));
      assert.equal(page.cursor, null);
    }
  } finally {
    await server.close();
  }
});

Deno.test("GET /api/v1/attempts combines filters", async () => {
  const server = await startTestServer();
  try {
    const all = await seed(server, 96);
    const token = await server.mint();
    const mid = all[48].at;
    const cases: [Record<string, string | number>, (a: Attempt) => boolean][] = [
      [
        { outcome: "failure", ip: "10.0.0.1" },
        (a) => a.outcome === "failure" && a.ip === "10.0.0.1",
      ],
      [
        { outcome: "success", user: "alice" },
        (a) => a.outcome === "success" && a.user === "alice",
      ],
      [
        { reason: "invalid_signature", ip: "2001:db8::7", since: mid },
        (a) => a.reason === "invalid_signature" && a.ip === "2001:db8::7" && a.at >= mid,
      ],
      [
        { user: "bob", ip: "10.0.0.2", outcome: "failure", until: mid },
        (a) => a.user === "bob" && a.ip === "10.0.0.2" && a.outcome === "failure" && a.at <= mid,
      ],
      [{ outcome: "success", reason: "bad_origin" }, () => false],
    ];
    for (const [params, keep] of cases) {
      const expected = all.filter(keep);
      const page = await attempts(server, token, { ...params, limit: 500 });
      assert.deepEqual(ids(page.items), ids(expected), JSON.stringify(params));
      if (JSON.stringify(params) !== JSON.stringify(cases[4][0])) {
        assert.ok(expected.length > 0, `case ${JSON.stringify(params)} selects nothing`);
      }
    }
  } finally {
    await server.close();
  }
});

Deno.test("GET /api/v1/attempts finds by since and until an attempt recorded after a later one", async () => {
  // AttemptInput takes an `at`; an attempt that reaches the log after a
  // later one must still be listed under its own time.
  const server = await startTestServer();
  try {
    const now = Date.now();
    const late = await server.deps.attempts.record(attemptInput({ at: now, ip: "10.3.3.3" }));
    const early = await server.deps.attempts.record(
      attemptInput({ at: now - 3_600_000, ip: "10.3.3.3" }),
    );
    const token = await server.mint();

    const window = await attempts(server, token, {
      since: now - 7_200_000,
      until: now - 1_800_000,
    });
    assert.deepEqual(ids(window.items), [early.id]);
    const all = await attempts(server, token, { ip: "10.3.3.3" });
    assert.deepEqual(ids(all.items), [late.id, early.id], "newest first by time");
  } finally {
    await server.close();
  }
});

Deno.test("GET /api/v1/attempts honours limit, 50 by default, and stays newest first", async () => {
  const server = await startTestServer();
  try {
    const all = await seed(server, 120);
    const token = await server.mint();
    const first = await attempts(server, token);
    assert.deepEqual(ids(first.items), ids(all.slice(0, 50)));
    assert.equal(first.cursor, all[49].id);
    for (const limit of [1, 7, 119]) {
      const page = await attempts(server, token, { limit });
      assert.deepEqual(ids(page.items), ids(all.slice(0, limit)));
      assert.notEqual(page.cursor, null);
    }
    const whole = await attempts(server, token, { limit: 500 });
    assert.deepEqual(ids(whole.items), ids(all));
    assert.equal(whole.cursor, null);
    for (let i = 1; i < whole.items.length; i++) {
      assert.ok(whole.items[i - 1].id > whole.items[i].id);
      assert.ok(whole.items[i - 1].at >= whole.items[i].at);
    }
  } finally {
    await server.close();
  }
});

Deno.test("GET /api/v1/attempts pages newest first with a cursor and no duplicates", async () => {
  const server = await startTestServer();
  try {
    const all = await seed(server, 137);
    const token = await server.mint();

    const plain = await walk(server, token, { limit: 10 });
    assert.deepEqual(ids(plain.items), ids(all));
    assert.equal(plain.pages, 14);

    const filtered = await walk(server, token, { outcome: "failure", limit: 7 });
    assert.deepEqual(ids(filtered.items), ids(all.filter((a) => a.outcome === "failure")));

    const combined = await walk(server, token, {
      outcome: "failure",
      ip: "10.0.0.1",
      since: all[100].at,
      limit: 3,
    });
    assert.deepEqual(
      ids(combined.items),
      ids(all.filter((a) => a.outcome === "failure" && a.ip === "10.0.0.1" && a.at >= all[100].at)),
    );

    // A limit that divides the total exactly still ends with cursor null.
    const exact = await walk(server, token, { user: "alice", limit: 5 });
    const alices = all.filter((a) => a.user === "alice");
    assert.equal(alices.length, 35);
    assert.deepEqual(ids(exact.items), ids(alices));
  } finally {
    await server.close();
  }
});

Deno.test("GET /api/v1/attempts pages a sparse filter over thousands of records without losing any", async () => {
  // 2,500 attempts from one ip, of which 3 are successes: walking the ip
  // index for outcome=success spends the scan budget of a page, so the
  // answer continues with a cursor from where the scan stopped.
  const server = await startTestServer();
  try {
    const start = Date.now() - 3_600_000;
    const wanted = new Set([5, 10, 2400]);
    const results = await Promise.all(
      Array.from({ length: 2500 }, (_, i) =>
        server.deps.attempts.record(attemptInput({
          at: start + i,
          ip: "10.9.9.9",
          outcome: wanted.has(i) ? "success" : "failure",
          reason: wanted.has(i) ? "ok" : "malformed_token",
        }))),
    );
    const expected = results.filter((a) => a.outcome === "success").reverse();
    assert.equal(expected.length, 3);
    const token = await server.mint();

    const { items } = await walk(server, token, { ip: "10.9.9.9", outcome: "success", limit: 2 });
    assert.deepEqual(ids(items), ids(expected));
  } finally {
    await server.close();
  }
});

Deno.test("GET /api/v1/attempts answers 400 invalid_request with issues for each bad parameter", async () => {
  const server = await startTestServer();
  try {
    const token = await server.mint();
    const now = Date.now();
    const bad = [
      "limit=0",
      "limit=501",
      "limit=abc",
      "limit=-1",
      "limit=1.5",
      "limit=",
      "since=abc",
      "until=yesterday",
      "since=-5",
      `since=${now}&until=${now - 1}`,
      "outcome=maybe",
      "reason=because",
      "unknown=1",
      "cursor=garbage",
      "cursor=%27%3B%20DROP%20TABLE",
      "outcome=success&outcome=failure",
    ];
    for (const qs of bad) {
      const answer = await get(server, `/api/v1/attempts?${qs}`, token);
      assert.equal(answer.status, 400, qs);
      assert.equal(answer.body.error, "invalid_request", qs);
      assert.ok(Array.isArray(answer.body.issues), qs);
      assert.ok(answer.body.issues.length > 0, qs);
    }
    // The edges of the valid range are accepted.
    for (const qs of ["limit=1", "limit=500", `since=${now}&until=${now}`, "since=0"]) {
      assert.equal((await get(server, `/api/v1/attempts?${qs}`, token)).status, 200, qs);
    }
  } finally {
    await server.close();
  }
});

Deno.test("GET /api/v1/attempts answers 400 with issues, not 500, for since or until past the last ULID time", async () => {
  await using server = await startTestServer();
  const token = await server.mint();
  const last = 2 ** 48 - 1;
  for (const qs of [`since=${last + 1}`, `until=${last + 1}`, "since=999999999999999"]) {
    const answer = await get(server, `/api/v1/attempts?${qs}`, token);
    assert.equal(answer.status, 400, qs);
    assert.equal(answer.body.error, "invalid_request", qs);
    assert.match(JSON.stringify(answer.body.issues), /from 0 to 281474976710655/, qs);
  }
  assert.equal(await failAuth(server), "malformed_token");
  // The last time a ULID holds is still a valid bound, both ways.
  for (
    const [qs, count] of [[`since=${last}`, 0], [`until=${last}`, 1], [
      `since=0&until=${last}`,
      1,
    ]] as const
  ) {
    const answer = await get(server, `/api/v1/attempts?${qs}`, token);
    assert.equal(answer.status, 200, qs);
    assert.equal(answer.body.items.length, count, qs);
  }
});

Deno.test("GET /api/v1/attempts does not serve expired records", async () => {
  const server = await startTestServer();
  try {
    const now = Date.now();
    // A log that keeps records a day, given attempts from two days ago.
    const shortLog = new AttemptLog(server.deps.kv, { retentionDays: 1 });
    const expired = await shortLog.record(attemptInput({
      at: now - 2 * 86_400_000,
      ip: "10.7.7.7",
      user: "old",
      outcome: "failure",
      reason: "token_expired",
    }));
    // The same age under a 30-day retention is still served.
    const longLog = new AttemptLog(server.deps.kv, { retentionDays: 30 });
    const kept = await longLog.record(attemptInput({
      at: now - 2 * 86_400_000 + 1,
      ip: "10.7.7.7",
      user: "old",
      outcome: "failure",
      reason: "token_expired",
    }));
    const token = await server.mint();

    const queries: Record<string, string | number>[] = [
      {},
      { ip: "10.7.7.7" },
      { user: "old" },
      { outcome: "failure" },
      { reason: "token_expired" },
      { since: 0 },
      { since: expired.at, until: expired.at },
    ];
    for (const params of queries) {
      const { items } = await walk(server, token, { ...params, limit: 500 });
      assert.equal(ids(items).includes(expired.id), false, JSON.stringify(params));
      if (!("until" in params)) {
        assert.ok(ids(items).includes(kept.id), JSON.stringify(params));
      }
    }
  } finally {
    await server.close();
  }
});

Deno.test("GET /api/v1/stats returns Stats whose attempt counters match what was recorded", async () => {
  const server = await startTestServer();
  const client = await TestClient.open(server.wsUrl);
  try {
    const token = await server.mint({ sub: "carol" });
    const before = await get(server, "/api/v1/stats", token);
    assert.equal(before.status, 200);
    const empty = z.strictObject(Stats.shape).parse(before.body);
    assert.equal(empty.attempts.total, 0);
    assert.deepEqual(empty.attempts.byReason, {});

    await client.auth(await server.mint({ sub: "dave", role: "viewer" }));
    assert.equal(
      await failAuth(server, await forge(claims(), randomSecret())),
      "invalid_signature",
    );
    assert.equal(await failAuth(server, "x.y"), "malformed_token");
    assert.equal(await failAuth(server, "x.y.z"), "malformed_token");
    await server.deps.attempts.record(attemptInput({ outcome: "failure", reason: "bad_origin" }));
    await server.deps.attempts.record(
      attemptInput({ outcome: "success", reason: "ok", user: "erin" }),
    );

    const answer = await get(server, "/api/v1/stats", token);
    assert.equal(answer.status, 200);
    const stats = Stats.parse(answer.body);
    assert.equal(stats.instance, server.deps.instanceId);
    assert.ok(Math.abs(stats.at - Date.now()) < 5000);
    assert.ok(stats.uptimeS >= 0);
    assert.deepEqual(stats.attempts, {
      total: 6,
      success: 2,
      failure: 4,
      byReason: { invalid_signature: 1, malformed_token: 2, bad_origin: 1 },
      lastMinute: { success: 2, failure: 4 },
    });
    assert.equal(stats.connections.authenticated, 1);
    assert.equal(stats.connections.open, 1);
    assert.deepEqual(stats.presence, [{ name: "dave", role: "viewer", connections: 1 }]);
  } finally {
    await client.close();
    await server.close();
  }
});
