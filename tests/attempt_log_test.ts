/**
 * Unit tests of lib/attempts/log.ts against a real Deno KV, in memory and on
 * a file: what one record writes, how text fields are cut, group commit and
 * write failures.
 */
import { tempFileKv } from "./helpers.ts";
import assert from "node:assert/strict";
import { decodeTime } from "ulid";
import {
  type AttemptInput,
  AttemptLog,
  cutText,
  MAX_FIELD_CHARS,
  MAX_USER_CHARS,
  type StoredAttempt,
} from "../lib/attempts/log.ts";
import {
  attemptBucketKey,
  attemptCountKey,
  attemptIndexKey,
  attemptKey,
  statsVersionKey,
} from "../lib/store/keys.ts";
import type { Attempt } from "../shared/protocol.ts";

const DAY_MS = 86_400_000;

/** A KV on `:memory:` or on a file in a fresh temp folder; `close` removes both. */
async function openStore(kind: "memory" | "file"): Promise<{
  kv: Deno.Kv;
  close(): Promise<void>;
}> {
  if (kind === "memory") {
    const kv = await Deno.openKv(":memory:");
    return { kv, close: () => Promise.resolve(kv.close()) };
  }
  return await tempFileKv("lookout_attempt_log_");
}

/**
 * Wraps a real KV so every atomic commit is counted; only `atomic` is used
 * by the attempt log, everything else goes to the real handle.
 */
function countingKv(kv: Deno.Kv, options: { failNext?: number } = {}) {
  const counter = { commits: 0, failNext: options.failNext ?? 0 };
  const wrapper = {
    atomic(): Deno.AtomicOperation {
      const op = kv.atomic();
      const commit = op.commit.bind(op);
      op.commit = () => {
        counter.commits++;
        if (counter.failNext > 0) {
          counter.failNext--;
          return Promise.reject(new Error("simulated KV write failure"));
        }
        return commit();
      };
      return op;
    },
  };
  return { kv: wrapper as unknown as Deno.Kv, counter };
}

function input(overrides: Partial<AttemptInput> = {}): AttemptInput {
  return {
    ip: "192.0.2.10",
    user: "alice",
    outcome: "failure",
    reason: "invalid_signature",
    transport: "message",
    origin: "http://localhost:8000",
    userAgent: "test-agent/1.0",
    tokenId: "01HZZZZZZZZZZZZZZZZZZZZZZZ",
    durationMs: 1.234,
    ...overrides,
  };
}

async function u64(kv: Deno.Kv, key: Deno.KvKey): Promise<number> {
  const entry = await kv.get<Deno.KvU64>(key);
  return entry.value === null ? 0 : Number(entry.value.value);
}

async function listAll<T>(kv: Deno.Kv, prefix: Deno.KvKey): Promise<Deno.KvEntry<T>[]> {
  const out: Deno.KvEntry<T>[] = [];
  for await (const e of kv.list<T>({ prefix })) out.push(e);
  return out;
}

for (const kind of ["memory", "file"] as const) {
  Deno.test(`AttemptLog.record() writes the record, its 4 indexes and the counters in one commit (${kind} KV)`, async () => {
    const store = await openStore(kind);
    try {
      const { kv: counted, counter } = countingKv(store.kv);
      const log = new AttemptLog(counted, { retentionDays: 30 });
      const at = 1_700_000_123_456;
      const attempt = await log.record(input({ at }));

      assert.equal(counter.commits, 1);
      const keys: Deno.KvKey[] = [
        attemptKey(attempt.id),
        attemptIndexKey("outcome", "failure", attempt.id),
        attemptIndexKey("reason", "invalid_signature", attempt.id),
        attemptIndexKey("ip", "192.0.2.10", attempt.id),
        attemptIndexKey("user", "alice", attempt.id),
        attemptCountKey("total"),
        attemptCountKey("outcome", "failure"),
        attemptCountKey("reason", "invalid_signature"),
        attemptBucketKey("10s", 1_700_000_120_000, "failure"),
        attemptBucketKey("1m", 1_700_000_100_000, "failure"),
        statsVersionKey(),
      ];
      const entries = [
        ...await store.kv.getMany(keys.slice(0, 10)),
        ...await store.kv.getMany(keys.slice(10)),
      ];
      for (const [i, e] of entries.entries()) {
        assert.notEqual(e.versionstamp, null, `missing ${JSON.stringify(keys[i])}`);
      }
      // One atomic commit gives every key it writes the same versionstamp.
      assert.equal(new Set(entries.map((e) => e.versionstamp)).size, 1);

      const stored = entries[0].value as StoredAttempt;
      assert.deepEqual(stored, { ...attempt, expiresAt: at + 30 * DAY_MS });
      for (const e of entries.slice(1, 5)) assert.equal(e.value, attempt.id);
      for (const e of entries.slice(5)) {
        assert.ok(e.value instanceof Deno.KvU64);
        assert.equal(e.value.value, 1n);
      }
      assert.equal(attempt.at, at);
      assert.equal(attempt.durationMs, 1.23);
      assert.equal(attempt.id.length, 26);
    } finally {
      await store.close();
    }
  });
}

Deno.test("AttemptLog.record() writes no user index entry for a null user", async () => {
  const store = await openStore("memory");
  try {
    const log = new AttemptLog(store.kv, { retentionDays: 30 });
    const attempt = await log.record(input({ user: null, reason: "malformed_token" }));
    assert.equal(attempt.user, null);
    assert.deepEqual(await listAll(store.kv, ["attempts_by_user"]), []);
    assert.equal((await listAll(store.kv, ["attempts_by_outcome"])).length, 1);
    assert.equal((await listAll(store.kv, ["attempts_by_reason"])).length, 1);
    assert.equal((await listAll(store.kv, ["attempts_by_ip"])).length, 1);
    const stored = await store.kv.get<StoredAttempt>(attemptKey(attempt.id));
    assert.equal(stored.value?.user, null);
  } finally {
    await store.close();
  }
});

Deno.test("AttemptLog.record() counts a success by total and outcome, and each failure by reason", async () => {
  const store = await openStore("memory");
  try {
    const log = new AttemptLog(store.kv, { retentionDays: 30 });
    await log.record(input({ outcome: "success", reason: "ok" }));
    await log.record(input({ reason: "token_expired" }));
    await log.record(input({ reason: "token_expired" }));
    await log.record(input({ reason: "bad_origin", transport: "upgrade" }));

    assert.equal(await u64(store.kv, attemptCountKey("total")), 4);
    assert.equal(await u64(store.kv, attemptCountKey("outcome", "success")), 1);
    assert.equal(await u64(store.kv, attemptCountKey("outcome", "failure")), 3);
    assert.equal(await u64(store.kv, attemptCountKey("reason", "token_expired")), 2);
    assert.equal(await u64(store.kv, attemptCountKey("reason", "bad_origin")), 1);
    assert.equal(await u64(store.kv, statsVersionKey()), 4);

    const buckets10 = await listAll<Deno.KvU64>(store.kv, ["attempt_buckets_10s"]);
    const buckets1m = await listAll<Deno.KvU64>(store.kv, ["attempt_buckets_1m"]);
    const sum = (es: Deno.KvEntry<Deno.KvU64>[], outcome: string) =>
      es.filter((e) => e.key[2] === outcome).reduce((n, e) => n + Number(e.value.value), 0);
    assert.equal(sum(buckets10, "success"), 1);
    assert.equal(sum(buckets10, "failure"), 3);
    assert.equal(sum(buckets1m, "success"), 1);
    assert.equal(sum(buckets1m, "failure"), 3);
    for (const e of buckets10) assert.equal(Number(e.key[1]) % 10_000, 0);
    for (const e of buckets1m) assert.equal(Number(e.key[1]) % 60_000, 0);
  } finally {
    await store.close();
  }
});

Deno.test("AttemptLog.record() stores expiresAt = at + the retention", async () => {
  const store = await openStore("memory");
  try {
    const log = new AttemptLog(store.kv, { retentionDays: 7 });
    const before = Date.now();
    const now = await log.record(input());
    const after = Date.now();
    assert.ok(now.at >= before && now.at <= after);
    const old = await log.record(input({ at: before - 3 * DAY_MS }));

    for (const attempt of [now, old]) {
      const stored = (await store.kv.get<StoredAttempt>(attemptKey(attempt.id))).value;
      assert.ok(stored);
      assert.equal(stored.at, attempt.at);
      assert.equal(stored.expiresAt, attempt.at + 7 * DAY_MS);
    }
    // What record() resolves with is the public Attempt, without expiresAt.
    assert.equal("expiresAt" in now, false);
  } finally {
    await store.close();
  }
});

Deno.test("AttemptLog.record() gives an attempt with an earlier `at` an id of its own time", async () => {
  // Listing by time range walks ids, so an id must encode its record's `at`
  // even when attempts reach the log out of time order.
  const store = await openStore("memory");
  try {
    const log = new AttemptLog(store.kv, { retentionDays: 30 });
    const now = Date.now();
    const first = await log.record(input({ at: now }));
    const earlier = await log.record(input({ at: now - 60_000 }));
    assert.equal(decodeTime(first.id), first.at);
    assert.equal(decodeTime(earlier.id), earlier.at, "the id encodes another time than `at`");
    assert.ok(earlier.id < first.id, "an earlier attempt must sort before a later one");
  } finally {
    await store.close();
  }
});

Deno.test("cutText() cuts a 10 KB text to 1024 characters", () => {
  const ua = "Mozilla/5.0 ".repeat(1000).slice(0, 10_240);
  const cut = cutText(ua);
  assert.equal(cut?.length, MAX_FIELD_CHARS);
  assert.equal(cut, ua.slice(0, 1024));
  assert.equal(cutText("short"), "short");
  assert.equal(cutText("x".repeat(1024)), "x".repeat(1024));
  assert.equal(cutText(null), null);
  assert.equal(cutText(undefined), null);
});

Deno.test("cutText() never splits a surrogate pair", () => {
  // 1023 ASCII units, then emoji: unit 1024 is the high half of a pair.
  const split = "a".repeat(1023) + "\u{1F600}".repeat(100);
  const cut = cutText(split)!;
  assert.equal(cut, "a".repeat(1023));
  assert.ok(cut.isWellFormed());

  // Only emoji: 1024 units are exactly 512 whole pairs, all kept.
  const whole = "\u{1F600}".repeat(5000);
  assert.equal(cutText(whole), "\u{1F600}".repeat(512));

  // Odd offsets: the result is always well formed and at most max units.
  for (let pad = 0; pad < 4; pad++) {
    const text = "b".repeat(pad) + "\u{10348}\u{1F4A9}".repeat(3000);
    const out = cutText(text, 101)!;
    assert.ok(out.length <= 101 && out.length >= 100);
    assert.ok(out.isWellFormed(), `pad ${pad} left a lone surrogate`);
  }
});

Deno.test("AttemptLog.record() cuts a 10 KB user agent to 1024 characters without splitting a pair", async () => {
  const store = await openStore("memory");
  try {
    const log = new AttemptLog(store.kv, { retentionDays: 30 });
    const userAgent = "U".repeat(1023) + "\u{1F916}".repeat(5000);
    const attempt = await log.record(input({ userAgent, user: "\u{1F600}".repeat(400) }));
    const stored = (await store.kv.get<StoredAttempt>(attemptKey(attempt.id))).value!;
    assert.equal(stored.userAgent, "U".repeat(1023));
    assert.ok(stored.userAgent!.isWellFormed());
    assert.equal(stored.user, "\u{1F600}".repeat(MAX_USER_CHARS / 2));
  } finally {
    await store.close();
  }
});

Deno.test("AttemptLog.record() keeps control characters in origin as text, cut rather than rejected", async () => {
  const store = await openStore("memory");
  try {
    const log = new AttemptLog(store.kv, { retentionDays: 30 });
    const origin = "http://evil\u0000\u0007\r\n\u001b[31m<script>\u007f" + "\t".repeat(3000);
    const attempt = await log.record(input({ origin }));
    assert.equal(attempt.origin, origin.slice(0, 1024));
    const stored = (await store.kv.get<StoredAttempt>(attemptKey(attempt.id))).value!;
    assert.equal(typeof stored.origin, "string");
    assert.equal(stored.origin, origin.slice(0, 1024));
    assert.ok(stored.origin!.includes("\u0000\u0007\r\n\u001b"));
  } finally {
    await store.close();
  }
});

Deno.test("AttemptLog.record() groups 200 concurrent records into far fewer than 200 commits", async () => {
  const store = await openStore("memory");
  try {
    const { kv: counted, counter } = countingKv(store.kv);
    const log = new AttemptLog(counted, { retentionDays: 30 });
    const heard: Attempt[] = [];
    log.onRecorded((batch) => heard.push(...batch));

    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        log.record(input({
          tokenId: `token-${i}`,
          ip: `10.0.${i % 4}.${i}`,
          outcome: i % 5 === 0 ? "success" : "failure",
          reason: i % 5 === 0 ? "ok" : "invalid_signature",
        }))),
    );

    assert.equal(results.length, 200);
    assert.deepEqual(results.map((a) => a.tokenId), results.map((_, i) => `token-${i}`));
    assert.equal(new Set(results.map((a) => a.id)).size, 200);
    assert.ok(counter.commits < 20, `expected a few commits, got ${counter.commits}`);

    const stored = await listAll<StoredAttempt>(store.kv, ["attempts"]);
    assert.equal(stored.length, 200);
    const tokenIds = stored.map((e) => e.value.tokenId);
    assert.equal(new Set(tokenIds).size, 200);
    assert.deepEqual(new Set(stored.map((e) => e.value.id)), new Set(results.map((a) => a.id)));
    for (const field of ["outcome", "reason", "ip", "user"]) {
      assert.equal((await listAll(store.kv, [`attempts_by_${field}`])).length, 200, field);
    }
    assert.equal(await u64(store.kv, attemptCountKey("total")), 200);
    assert.equal(await u64(store.kv, attemptCountKey("outcome", "success")), 40);
    assert.equal(await u64(store.kv, attemptCountKey("outcome", "failure")), 160);
    assert.equal(await u64(store.kv, attemptCountKey("reason", "invalid_signature")), 160);
    // The version moves once per commit, not once per attempt.
    assert.equal(await u64(store.kv, statsVersionKey()), counter.commits);

    assert.equal(heard.length, 200);
    assert.equal(new Set(heard.map((a) => a.id)).size, 200);
  } finally {
    await store.close();
  }
});

Deno.test("AttemptLog.record() commits a burst of attempts whose fields are all at their longest", async () => {
  // The worst case a hostile client can make a batch: every text field at
  // its cut length in three-byte UTF-8. A batch must still fit KV's limits,
  // or one client's long fields would fail everyone else's attempts.
  const store = await openStore("memory");
  try {
    const log = new AttemptLog(store.kv, { retentionDays: 30 });
    const long = "\u4e2d".repeat(5000);
    const results = await Promise.allSettled(
      Array.from({ length: 200 }, (_, i) =>
        log.record(input({
          user: `${i}-${long}`,
          ip: "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255",
          origin: long,
          userAgent: long,
          tokenId: long,
        }))),
    );
    const failed = results.filter((r) => r.status === "rejected");
    assert.equal(
      failed.length,
      0,
      `rejected: ${failed.length}, first: ${
        failed.length ? String((failed[0] as PromiseRejectedResult).reason) : ""
      }`,
    );
    assert.equal((await listAll(store.kv, ["attempts"])).length, 200);
  } finally {
    await store.close();
  }
});

Deno.test("AttemptLog.record() rejects on a KV write error and never calls the listener", async () => {
  const store = await openStore("memory");
  const log = new AttemptLog(store.kv, { retentionDays: 30 });
  let heard = 0;
  log.onRecorded(() => heard++);
  store.kv.close();
  await assert.rejects(log.record(input()));
  await assert.rejects(Promise.all([log.record(input()), log.record(input())]));
  await log.flush();
  assert.equal(heard, 0);
});

Deno.test("AttemptLog.record() rejects only the failed batch; later records still commit", async () => {
  const store = await openStore("memory");
  try {
    const { kv: counted, counter } = countingKv(store.kv, { failNext: 1 });
    const log = new AttemptLog(counted, { retentionDays: 30 });
    const heard: Attempt[] = [];
    log.onRecorded((batch) => heard.push(...batch));

    await assert.rejects(log.record(input({ tokenId: "lost" })), /simulated KV write failure/);
    assert.equal(heard.length, 0);
    const kept = await log.record(input({ tokenId: "kept" }));
    await log.flush();

    assert.equal(counter.commits, 2);
    assert.deepEqual(heard.map((a) => a.tokenId), ["kept"]);
    const stored = await listAll<StoredAttempt>(store.kv, ["attempts"]);
    assert.deepEqual(stored.map((e) => e.value.id), [kept.id]);
    assert.equal(await u64(store.kv, attemptCountKey("total")), 1);
  } finally {
    await store.close();
  }
});

Deno.test("AttemptLog.settled() waits for the commit in flight and its listeners, not for later ones", async () => {
  const store = await openStore("memory");
  try {
    const log = new AttemptLog(store.kv, { retentionDays: 30 });
    const heard: { versionstamp: string; n: number }[] = [];
    log.onRecorded((batch, versionstamp) => heard.push({ versionstamp, n: batch.length }));
    await log.settled(); // nothing in flight: at once

    const first = log.record(input({ tokenId: "first" }));
    const settled = log.settled(); // the first commit is in flight now
    const later = [log.record(input()), log.record(input())]; // queued behind it
    await settled;
    assert.deepEqual(
      heard.map((h) => h.n),
      [1],
      "settled() waited for more than the commit in flight",
    );
    await Promise.all([first, ...later]);
    assert.deepEqual(heard.map((h) => h.n), [1, 2]);
    // Each listener call names its own commit, in commit order.
    const [a, b] = heard.map((h) => h.versionstamp);
    assert.ok(a < b, `${a} then ${b}`);
  } finally {
    await store.close();
  }
});
