import assert from "node:assert/strict";
/**
 * Races inside one instance's deployment-wide stats (lib/stats/deployment.ts)
 * fed by its registry, its attempt log and the feed's watch of the stats
 * version (lib/realtime/feed.ts), wired as server.ts wires them.
 */
import { DeploymentStats, type DeploymentStatsOptions } from "../lib/stats/deployment.ts";
import { Feed } from "../lib/realtime/feed.ts";
import { type Member, Registry } from "../lib/realtime/registry.ts";
import { AttemptLog, commitAttempts } from "../lib/attempts/log.ts";
import { attemptInput, eventually, interceptKv } from "./helpers.ts";
import { createLogger } from "../lib/log.ts";
import { instanceKey, statsVersionKey } from "../lib/store/keys.ts";
import type { EventName, Stats } from "../shared/protocol.ts";

/** Holds whoever passes it while it is shut; `shut()` resolves once someone is held. */
class Gate {
  #open: Promise<void> | null = null;
  #release = () => {};
  #arrived: (() => void) | null = null;

  shut(): Promise<void> {
    this.#open = new Promise((resolve) => this.#release = resolve);
    return new Promise((resolve) => this.#arrived = resolve);
  }

  open(): void {
    this.#open = null;
    this.#arrived = null;
    this.#release();
  }

  async pass(): Promise<void> {
    if (!this.#open) return;
    this.#arrived?.();
    await this.#open;
  }
}

/**
 * `kv` whose `list` reads can be held after they have read the store, so a
 * test can change the store while a read of the old state is in flight, and
 * whose atomic commits can be held before they write.
 */
function holdableKv(kv: Deno.Kv) {
  const reads = new Gate();
  const commits = new Gate();
  const counts = { statsReads: 0 };
  const wrapped = interceptKv(kv, {
    commit: async (real) => {
      await commits.pass();
      return await real();
    },
    call(name, args, real) {
      if (name !== "list") return real();
      const [selector] = args as [Deno.KvListSelector];
      return (async function* () {
        // Each stats read lists the attempt counters once.
        if ("prefix" in selector && selector.prefix[0] === "attempt_counts") counts.statsReads++;
        const entries = await Array.fromAsync(real() as Deno.KvListIterator<unknown>);
        await reads.pass();
        yield* entries;
      })();
    },
  });
  return {
    kv: wrapped,
    counts,
    /** Holds every read from now on; resolves once one has read and is held. */
    hold: () => reads.shut(),
    release: () => reads.open(),
    /** Holds every atomic commit from now on, before it writes; resolves once one is held. */
    holdCommits: () => commits.shut(),
    releaseCommits: () => commits.open(),
  };
}

/**
 * Stats on a fresh in-memory store (reached through {@linkcode holdableKv}),
 * with a registry, an attempt log and a feed wired to them as server.ts
 * wires them. `start()` starts the feed's kv.watch (its poll is a minute
 * away, so only the watch wakes it). `await using` stops all and closes the store.
 */
async function openStats(options: Partial<DeploymentStatsOptions> = {}) {
  const store = await Deno.openKv(":memory:");
  const holdable = holdableKv(store);
  const logger = createLogger({ write: () => {} });
  const log = new AttemptLog(holdable.kv, { retentionDays: 1 });
  const registry = new Registry();
  const stats = new DeploymentStats(holdable.kv, registry, {
    instanceId: "b",
    startedAt: Date.now(),
    retentionDays: 1,
    logger,
    minIntervalMs: 100,
    // No heartbeat in a test's time: only the change itself can be pushed.
    heartbeatMs: 60_000,
    ...options,
  });
  const feed = new Feed(holdable.kv, {
    instanceId: "b",
    logger,
    pollMs: 60_000,
    versions: [{
      key: statsVersionKey(),
      onChange: async (versionstamp) => {
        await log.settled();
        stats.versionChanged(versionstamp);
      },
    }],
  });
  log.onRecorded((attempts, versionstamp) => stats.attemptsRecorded(attempts, versionstamp));
  let started = false;
  return {
    ...holdable,
    store,
    registry,
    stats,
    log,
    async start() {
      started = true;
      stats.start();
      await feed.start();
    },
    async [Symbol.asyncDispose]() {
      if (started) await feed.stop();
      await stats.stop();
      store.close();
    },
  };
}

function member(id: string): Member & { received: Stats[] } {
  const received: Stats[] = [];
  return {
    id,
    user: { name: id, role: "admin" },
    claims: null,
    events: new Set<EventName>(["stats"]),
    received,
    send(text) {
      const message = JSON.parse(text);
      if (message.type === "stats_update") received.push(message.data);
    },
    close() {},
    closeAndWait: () => Promise.resolve(),
  };
}

for (
  const [how, watch] of [
    ["through kv.watch", true],
    ["as a change that names no commit", false],
  ] as const
) {
  Deno.test(`DeploymentStats pushes a change that another instance announces ${how} while a stats read is in flight`, async () => {
    await using fixture = await openStats();
    const { store, hold, release, registry, stats } = fixture;
    const watcher = member("watcher");
    if (watch) await fixture.start();
    registry.add(watcher);
    registry.authenticated(watcher, watcher.events);
    await stats.refreshNow();
    assert.equal(watcher.received.at(-1)?.attempts.failure ?? 0, 0);

    // A refresh reads the store as it is, and is held before it publishes.
    const held = hold();
    stats.changed(false);
    await held;
    // Meanwhile instance A records a failure; kv.watch reports its commit,
    // or a signal says only that something changed, while B still reads.
    await new AttemptLog(store, { retentionDays: 1 }).record(attemptInput());
    if (watch) await new Promise((resolve) => setTimeout(resolve, 100));
    else stats.changed(false);
    release();

    await eventually(
      () => (watcher.received.at(-1)?.attempts.failure ?? 0) >= 1,
      2000,
      "a stats_update with A's failure (B's next heartbeat is a minute away)",
    );
  });
}

Deno.test("DeploymentStats publishes a connection that opens while its instance entry is being written", async () => {
  await using fixture = await openStats();
  const { store, holdCommits, releaseCommits, registry } = fixture;
  const open = async () => (await store.get<{ open: number }>(instanceKey("b"))).value?.open ?? 0;
  registry.add(member("one"));
  await eventually(async () => await open() === 1, 2000, "the first entry");

  // The second socket's entry write is held in its commit...
  const held = holdCommits();
  registry.add(member("two"));
  await held;
  // ...and a third socket opens while it is held.
  registry.add(member("three"));
  await new Promise((resolve) => setTimeout(resolve, 300));
  releaseCommits();

  // Other instances read this entry: it must come to count all three.
  await eventually(
    async () => await open() === 3,
    2000,
    "the stored entry to count all three sockets (the next heartbeat is a minute away)",
  );
});

Deno.test("DeploymentStats pushes an attempt recorded here at once, then reads once to bring in the others", async () => {
  await using fixture = await openStats({ minIntervalMs: 1000 });
  const { counts, log, registry, stats } = fixture;
  const watcher = member("watcher");
  const failures = () => watcher.received.at(-1)?.attempts.failure ?? 0;
  await fixture.start();
  registry.add(watcher);
  registry.authenticated(watcher, watcher.events);
  // Quiet: no read for over a second, so no window is open.
  await eventually(
    async () => {
      const before = counts.statsReads;
      await new Promise((resolve) => setTimeout(resolve, 1200));
      return before === counts.statsReads;
    },
    10_000,
    "the stats to go quiet after the start",
  );

  // The attempt's commit bumps the stats version: kv.watch and the attempt
  // log both report it. The push needs no read...
  const reads = counts.statsReads;
  let started = Date.now();
  await log.record(attemptInput());
  await eventually(() => failures() === 1, 2000, "the first failure's stats_update");
  console.log(`an attempt recorded here was pushed in ${Date.now() - started} ms`);
  assert.equal(counts.statsReads, reads, "the push waited for a read");
  // ...and one read follows when the window ends, for both reports.
  await new Promise((resolve) => setTimeout(resolve, 1500));
  assert.equal(counts.statsReads - reads, 1, "reads after one attempt");
  assert.equal(watcher.received.filter((s) => s.attempts.failure === 1).length, 1);

  // The next change, past the window, is pushed at once too.
  started = Date.now();
  await log.record(attemptInput());
  await eventually(() => failures() === 2, 2000, "the second failure's stats_update");
  console.log(`a change 1.5 s later was pushed in ${Date.now() - started} ms`);
  // And the count a new socket is first sent holds each attempt once.
  assert.equal((await stats.current()).attempts.failure, 2);
});

Deno.test("DeploymentStats reads no more for a commit reported while a read that holds it runs", async () => {
  await using fixture = await openStats();
  const { store, counts, hold, release, registry, stats } = fixture;
  const watcher = member("watcher");
  registry.add(watcher);
  registry.authenticated(watcher, watcher.events);
  await new Promise((resolve) => setTimeout(resolve, 300));

  // Committed before the refresh starts, so its read holds the attempt...
  const attempt = { id: crypto.randomUUID(), at: Date.now(), ...attemptInput() };
  const versionstamp = await commitAttempts(store, [attempt], 86_400_000);
  const reads = counts.statsReads;
  const held = hold();
  stats.changed(false);
  await held;
  // ...and its report lands while that read runs (kv.watch's, or the
  // attempt log's when the commit was this instance's).
  stats.attemptsRecorded([attempt], versionstamp);
  release();

  await eventually(
    () => (watcher.received.at(-1)?.attempts.failure ?? 0) === 1,
    2000,
    "the push",
  );
  await new Promise((resolve) => setTimeout(resolve, 500));
  assert.equal(counts.statsReads - reads, 1, "reads for one commit");
  assert.equal((await stats.current()).attempts.failure, 1, "the attempt counted twice");
});

Deno.test("DeploymentStats pushes a change at once after a read that pushed nothing, such as a heartbeat's", async () => {
  await using fixture = await openStats({ minIntervalMs: 1000 });
  const { counts, registry, stats, log } = fixture;
  const watcher = member("watcher");
  registry.add(watcher);
  registry.authenticated(watcher, watcher.events);
  await new Promise((resolve) => setTimeout(resolve, 1200));
  const pushes = watcher.received.length;

  // A read that finds nothing new, as the heartbeat's every 5 s...
  const reads = counts.statsReads;
  stats.changed(false);
  await eventually(() => counts.statsReads > reads, 2000, "the heartbeat's read");
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.equal(watcher.received.length, pushes, "the read found something to push");

  // ...does not hold the next change for a second.
  const started = Date.now();
  await log.record(attemptInput());
  await eventually(() => watcher.received.length > pushes, 2000, "the failure's stats_update");
  const latency = Date.now() - started;
  console.log(`a change 200 ms after a read that pushed nothing was pushed in ${latency} ms`);
  assert.ok(latency < 500, `pushed ${latency} ms after the change, as if in a window`);
});
