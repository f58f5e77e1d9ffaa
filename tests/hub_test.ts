import assert from "node:assert/strict";
import { Hub, type Member } from "../lib/hub.ts";
import { AttemptLog } from "../lib/attempt_log.ts";
import { attemptInput, eventually } from "./helpers.ts";
import { createLogger } from "../lib/log.ts";
import { instanceKey } from "../lib/kv_keys.ts";
import type { EventName, Stats } from "../lib/protocol.ts";

/**
 * `kv` whose `list` reads can be held after they have read the store, so a
 * test can change the store while a read of the old state is in flight.
 */
function holdableKv(kv: Deno.Kv) {
  let gate: Promise<void> | null = null;
  let release = () => {};
  let heldRead: (() => void) | null = null;
  let commitGate: Promise<void> | null = null;
  let releaseCommits = () => {};
  let heldCommit: (() => void) | null = null;
  const wrapped = new Proxy(kv, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (prop === "atomic") {
        return () => {
          const op = target.atomic();
          const commit = op.commit.bind(op);
          op.commit = async () => {
            if (commitGate) {
              heldCommit?.();
              await commitGate;
            }
            return await commit();
          };
          return op;
        };
      }
      if (prop !== "list") return typeof value === "function" ? value.bind(target) : value;
      return (selector: Deno.KvListSelector, options?: Deno.KvListOptions) =>
        (async function* () {
          const entries = await Array.fromAsync(target.list(selector, options));
          if (gate) {
            heldRead?.();
            await gate;
          }
          yield* entries;
        })();
    },
  });
  return {
    kv: wrapped as Deno.Kv,
    /** Holds every read from now on; resolves once one has read and is held. */
    hold(): Promise<void> {
      gate = new Promise((resolve) => release = resolve);
      return new Promise((resolve) => heldRead = resolve);
    },
    release(): void {
      gate = null;
      heldRead = null;
      release();
    },
    /** Holds every atomic commit from now on, before it writes; resolves once one is held. */
    holdCommits(): Promise<void> {
      commitGate = new Promise((resolve) => releaseCommits = resolve);
      return new Promise((resolve) => heldCommit = resolve);
    },
    releaseCommits(): void {
      commitGate = null;
      heldCommit = null;
      releaseCommits();
    },
  };
}

function testHub(kv: Deno.Kv): Hub {
  return new Hub(kv, {
    instanceId: "b",
    startedAt: Date.now(),
    retentionDays: 1,
    logger: createLogger({ write: () => {} }),
    minIntervalMs: 100,
    // No heartbeat in a test's time: only the change itself can be pushed.
    heartbeatMs: 60_000,
    channel: `hub_test_${crypto.randomUUID()}`,
  });
}

function member(id: string): Member & { received: Stats[] } {
  const received: Stats[] = [];
  return {
    id,
    state: "authenticated",
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

Deno.test("Hub pushes a change that another instance announces while a stats read is in flight", async () => {
  const store = await Deno.openKv(":memory:");
  const { kv, hold, release } = holdableKv(store);
  const hub = testHub(kv);
  const watcher = member("watcher");
  try {
    hub.add(watcher);
    hub.authenticated(watcher, watcher.events);
    await hub.refreshNow();
    assert.equal(watcher.received.at(-1)?.attempts.failure ?? 0, 0);

    // A refresh reads the store as it is, and is held before it publishes.
    const held = hold();
    hub.changed(false);
    await held;
    // Meanwhile instance A records a failure and announces it (its signal,
    // or the kv.watch wake-up, lands while B's read is still in flight).
    await new AttemptLog(store, { retentionDays: 1 }).record(attemptInput());
    hub.changed(false);
    release();

    await eventually(
      () => (watcher.received.at(-1)?.attempts.failure ?? 0) >= 1,
      2000,
      "a stats_update with A's failure (B's next heartbeat is a minute away)",
    );
  } finally {
    await hub.stop();
    store.close();
  }
});

Deno.test("Hub publishes a connection that opens while its instance entry is being written", async () => {
  const store = await Deno.openKv(":memory:");
  const { kv, holdCommits, releaseCommits } = holdableKv(store);
  const hub = testHub(kv);
  const open = async () => (await store.get<{ open: number }>(instanceKey("b"))).value?.open ?? 0;
  try {
    hub.add(member("one"));
    await eventually(async () => await open() === 1, 2000, "the first entry");

    // The second socket's entry write is held in its commit...
    const held = holdCommits();
    hub.add(member("two"));
    await held;
    // ...and a third socket opens while it is held.
    hub.add(member("three"));
    await new Promise((resolve) => setTimeout(resolve, 300));
    releaseCommits();

    // Other instances read this entry: it must come to count all three.
    await eventually(
      async () => await open() === 3,
      2000,
      "the stored entry to count all three sockets (the next heartbeat is a minute away)",
    );
  } finally {
    await hub.stop();
    store.close();
  }
});
