/**
 * Stats are deployment-wide: two Lookout instances in one process, each with
 * its own KV handle on one file, read each other's connections, presence
 * and attempt counters. And `stats_update` pushes follow attempts, coalesced.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Stats } from "../shared/protocol.ts";
import { writeInstance } from "../lib/stats/instances.ts";
import {
  eventually,
  failAuth,
  randomSecret,
  rawUpgrade,
  startTestServer,
  TestClient,
  type TestServer,
} from "./helpers.ts";

/** Two instances sharing one KV file through two handles, and one JWT secret. */
async function startPair(): Promise<{
  a: TestServer;
  b: TestServer;
  close(): Promise<void>;
}> {
  const dir = await Deno.makeTempDir({ prefix: "lookout_stats_" });
  const path = join(dir, "kv.sqlite3");
  const kvA = await Deno.openKv(path);
  const kvB = await Deno.openKv(path);
  // Two handles on one file, as the workers of one process have.
  const env = { JWT_SECRET: randomSecret(), KV_PATH: path };
  const a = await startTestServer(env, { kv: kvA });
  const b = await startTestServer(env, { kv: kvB });
  return {
    a,
    b,
    close: async () => {
      await a.close();
      await b.close();
      kvA.close();
      kvB.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** `GET /api/v1/stats` from `server`, checked against the `Stats` schema. */
async function stats(server: TestServer): Promise<Stats> {
  const res = await fetch(new URL("/api/v1/stats", server.url), {
    headers: { authorization: `Bearer ${await server.mint({ sub: "reader" })}` },
  });
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  return Stats.parse(body);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("/api/v1/stats on instance B counts a socket authenticated on instance A", async () => {
  const pair = await startPair();
  const { a, b } = pair;
  // A token from B is good on A: one secret for the deployment.
  const client = await TestClient.open(a.wsUrl);
  try {
    await client.auth(await b.mint({ sub: "alice", role: "admin" }));

    const seen = await eventually(
      async () => {
        const s = await stats(b);
        return s.connections.authenticated === 1 ? s : null;
      },
      5000,
      "B to see A's socket",
    );
    assert.ok(seen);
    assert.equal(seen.instance, b.deps.instanceId);
    assert.equal(seen.connections.open, 1);
    assert.deepEqual(seen.presence, [{ name: "alice", role: "admin", connections: 1 }]);

    await client.close();
    await eventually(
      async () => {
        const s = await stats(b);
        return s.connections.authenticated === 0 && s.connections.open === 0 &&
          s.presence.length === 0;
      },
      5000,
      "B to see A's socket close",
    );
  } finally {
    await client.close();
    await pair.close();
  }
});

Deno.test("/api/v1/stats merges one user's presence across instances", async () => {
  const pair = await startPair();
  const { a, b } = pair;
  const onA = await TestClient.open(a.wsUrl);
  const onB = await TestClient.open(b.wsUrl);
  const viewer = await TestClient.open(b.wsUrl);
  try {
    await onA.auth(await a.mint({ sub: "alice" }));
    await onB.auth(await b.mint({ sub: "alice" }));
    await viewer.auth(await b.mint({ sub: "bob", role: "viewer" }));
    const expected = [
      { name: "alice", role: "admin", connections: 2 },
      { name: "bob", role: "viewer", connections: 1 },
    ];
    for (const server of [a, b]) {
      const s = await eventually(
        async () => {
          const s = await stats(server);
          return s.connections.authenticated === 3 ? s : null;
        },
        5000,
        "both instances to count three sockets",
      );
      assert.ok(s);
      assert.deepEqual(s.presence, expected);
    }
  } finally {
    await onA.close();
    await onB.close();
    await viewer.close();
    await pair.close();
  }
});

Deno.test("/api/v1/stats attempt counters are shared by every instance", async () => {
  const pair = await startPair();
  const { a, b } = pair;
  const client = await TestClient.open(a.wsUrl);
  try {
    await client.auth(await a.mint());
    assert.equal(await failAuth(b), "malformed_token");
    assert.equal(await failAuth(b), "malformed_token");
    await a.deps.attempts.record({
      ip: "10.1.1.1",
      user: null,
      outcome: "failure",
      reason: "bad_origin",
      transport: "upgrade",
      origin: "https://evil.example",
      userAgent: null,
      tokenId: null,
      durationMs: 0,
    });

    const expected = {
      total: 4,
      success: 1,
      failure: 3,
      byReason: { malformed_token: 2, bad_origin: 1 },
      lastMinute: { success: 1, failure: 3 },
    };
    for (const server of [a, b]) {
      const s = await eventually(
        async () => {
          const s = await stats(server);
          return s.attempts.total === 4 ? s : null;
        },
        3000,
        "the counters to reach 4",
      );
      assert.ok(s);
      assert.deepEqual(s.attempts, expected);
    }
  } finally {
    await client.close();
    await pair.close();
  }
});

Deno.test("/api/v1/stats leaves out an instance whose heartbeat is stale", async () => {
  const pair = await startPair();
  const { a, b } = pair;
  try {
    const now = Date.now();
    await writeInstance(a.deps.kv, {
      id: "stale-peer",
      heartbeatAt: now - 60_000,
      open: 7,
      authenticated: 5,
      pending: 2,
      presence: [{ name: "ghost", role: "admin", connections: 5 }],
    });
    // A live peer written the same way is counted: the heartbeat decides.
    await writeInstance(a.deps.kv, {
      id: "live-peer",
      heartbeatAt: now,
      open: 3,
      authenticated: 2,
      pending: 1,
      presence: [{ name: "carol", role: "viewer", connections: 2 }],
    });
    for (const server of [a, b]) {
      const s = await stats(server);
      assert.deepEqual(s.connections, { open: 3, authenticated: 2, pending: 1 });
      assert.deepEqual(s.presence, [{ name: "carol", role: "viewer", connections: 2 }]);
    }
  } finally {
    await pair.close();
  }
});

Deno.test("/api/v1/stats drops a stopped instance's connections at once", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lookout_stats_" });
  const path = join(dir, "kv.sqlite3");
  const kvA = await Deno.openKv(path);
  const kvB = await Deno.openKv(path);
  const env = { JWT_SECRET: randomSecret() };
  const a = await startTestServer(env, { kv: kvA });
  const b = await startTestServer(env, { kv: kvB });
  const client = await TestClient.open(a.wsUrl);
  try {
    await client.auth(await a.mint({ sub: "alice" }));
    await eventually(async () => (await stats(b)).connections.authenticated === 1);

    await a.close();
    assert.equal((await client.closed).code, 1001);
    const s = await stats(b);
    assert.deepEqual(s.connections, { open: 0, authenticated: 0, pending: 0 });
    assert.deepEqual(s.presence, []);
  } finally {
    await client.close();
    await a.close();
    await b.close();
    kvA.close();
    kvB.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("/admin/ws pushes stats_update to a subscriber after another client's failed attempt", async () => {
  const server = await startTestServer();
  const watcher = await TestClient.open(server.wsUrl);
  try {
    await watcher.auth(await server.mint({ sub: "watcher" }));
    const first = await watcher.next("stats_update");
    assert.equal(first.data.attempts.failure, 0);

    const failedAt = Date.now();
    assert.equal(await failAuth(server), "malformed_token");
    while (true) {
      const update = await watcher.next("stats_update", 3000);
      if (update.data.attempts.failure === 1) {
        assert.equal(update.data.attempts.byReason.malformed_token, 1);
        assert.equal(update.data.attempts.lastMinute.failure, 1);
        break;
      }
    }
    assert.ok(Date.now() - failedAt < 2500, "the push came about a second after the change");
  } finally {
    await watcher.close();
    await server.close();
  }
});

Deno.test("/admin/ws coalesces stats_update pushes during a burst of failed attempts", async () => {
  // The per-IP failure limit is raised so all 30 failures are answered 401
  // and recorded; this test is about the pushes, not the limiter.
  const server = await startTestServer({}, { limits: { wsFailuresPerIp: 1000 } });
  const watcher = await TestClient.open(server.wsUrl);
  try {
    await watcher.auth(await server.mint({ sub: "watcher" }));
    await watcher.next("stats_update");
    // Let the pushes caused by the watcher's own arrival pass.
    await sleep(1200);
    const count = () => watcher.received.filter((m) => m.type === "stats_update").length;
    const before = count();

    // 30 failed upgrades over about 1.5 s; each is answered once recorded.
    const answers: Promise<number>[] = [];
    for (let i = 0; i < 30; i++) {
      answers.push(
        rawUpgrade(server.wsUrl, { Authorization: "Bearer not-a-token" }).then((r) => r.status),
      );
      await sleep(50);
    }
    assert.deepEqual(await Promise.all(answers), Array(30).fill(401));

    // The last change is pushed too, within about a second.
    const last = await eventually(
      () => {
        const updates = watcher.received.filter((m) => m.type === "stats_update");
        const latest = updates[updates.length - 1];
        return latest?.type === "stats_update" && latest.data.attempts.failure === 30
          ? latest
          : null;
      },
      3000,
      "a stats_update with all 30 failures",
    );
    assert.ok(last);
    assert.equal(last.data.attempts.total, 31);
    await sleep(1200);

    const pushes = count() - before;
    assert.ok(pushes >= 1, "no stats_update during the burst");
    assert.ok(pushes <= 4, `${pushes} stats_update pushes for 30 attempts in about 1.5 s`);
  } finally {
    await watcher.close();
    await server.close();
  }
});

Deno.test("/admin/ws streams an attempt recorded on instance A to an attempts subscriber on instance B", async () => {
  const pair = await startPair();
  try {
    const watcher = await TestClient.open(pair.b.wsUrl);
    await watcher.auth(await pair.b.mint({ sub: "watcher" }));
    watcher.send({ type: "subscribe", events: ["attempts"] });
    await watcher.next("subscribed");
    await failAuth(pair.a, "garbage-on-a");
    const event = await watcher.next("attempt", 2000);
    assert.equal(event.data.reason, "malformed_token");
    const [stored] = await pair.a.attempts(1);
    assert.equal(event.data.id, stored.id, "the record A stored, as B's subscriber saw it");
    await watcher.close();
  } finally {
    await pair.close();
  }
});

Deno.test("/admin/ws on instance B pushes stats_update within about a second of a change on instance A", async () => {
  const pair = await startPair();
  try {
    const watcher = await TestClient.open(pair.b.wsUrl);
    await watcher.auth(await pair.b.mint({ sub: "watcher" }));
    await watcher.next("stats_update");
    await sleep(1100);
    const before = watcher.received.filter((m) => m.type === "stats_update").length;
    const changedAt = Date.now();
    await failAuth(pair.a);
    while (true) {
      const update = await watcher.next("stats_update", 3000);
      if (update.data.attempts.failure >= 1) break;
    }
    const latency = Date.now() - changedAt;
    console.log(`A's failed attempt reached B's subscriber in ${latency} ms`);
    assert.ok(latency < 1500, `${latency} ms`);
    assert.ok(watcher.received.filter((m) => m.type === "stats_update").length > before);
    await watcher.close();
  } finally {
    await pair.close();
  }
});

Deno.test("/admin/ws pushes stats_update only when a count changed, and never older than one sent", async () => {
  const server = await startTestServer();
  const clients: TestClient[] = [];
  try {
    // Twelve sockets join one after another, each authenticating while the
    // refreshes that the previous ones caused are still in flight.
    for (let i = 0; i < 12; i++) {
      const client = await TestClient.open(server.wsUrl);
      clients.push(client);
      await client.auth(await server.mint({ sub: `user${i % 3}` }));
      await sleep(40);
    }
    await sleep(2500);
    for (const [i, client] of clients.entries()) {
      const updates = client.received.flatMap((m) => m.type === "stats_update" ? [m.data] : []);
      assert.ok(updates.length >= 1, `socket ${i} got no stats_update`);
      for (let n = 1; n < updates.length; n++) {
        const [before, after] = [updates[n - 1], updates[n]];
        assert.ok(
          after.at >= before.at,
          `socket ${i}: stats_update ${n} (at ${after.at}) is older than the one before (at ${before.at})`,
        );
        const { at: _a, uptimeS: _u, ...was } = before;
        const { at: _b, uptimeS: _v, ...now } = after;
        assert.notDeepEqual(
          now,
          was,
          `socket ${i}: stats_update ${n} changed nothing but at and uptimeS`,
        );
      }
    }
  } finally {
    for (const client of clients) await client.close();
    await server.close();
  }
});
