import assert from "node:assert/strict";
import { Hub, type Member } from "../lib/hub.ts";
import { commitAttempts } from "../lib/attempt_log.ts";
import { createLogger } from "../lib/log.ts";
import { instanceKey } from "../lib/kv_keys.ts";
import type { Attempt, EventName, Stats } from "../lib/protocol.ts";

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

/** Waits for `ok()`, failing with `message()` after `ms`. */
async function until(ok: () => boolean | Promise<boolean>, ms: number, message: () => string) {
  const deadline = Date.now() + ms;
  while (!(await ok())) {
    assert.ok(Date.now() < deadline, message());
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
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

function failure(at: number): Attempt {
  return {
    id: crypto.randomUUID(),
    at,
    ip: "192.0.2.7",
    user: null,
    outcome: "failure",
    reason: "malformed_token",
    transport: "message",
    origin: null,
    userAgent: null,
    tokenId: null,
    durationMs: 1,
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
    await commitAttempts(store, [failure(Date.now())], 86_400_000);
    hub.changed(false);
    release();

    await until(
      () => (watcher.received.at(-1)?.attempts.failure ?? 0) >= 1,
      2000,
      () =>
        `no stats_update with A's failure in 2 s: got ${
          JSON.stringify(watcher.received.map((s) => s.attempts.failure))
        }`,
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
    await until(async () => await open() === 1, 2000, () => "the first entry was never written");

    // The second socket's entry write is held in its commit...
    const held = holdCommits();
    hub.add(member("two"));
    await held;
    // ...and a third socket opens while it is held.
    hub.add(member("three"));
    await new Promise((resolve) => setTimeout(resolve, 300));
    releaseCommits();

    // Other instances read this entry: it must come to count all three.
    let last = 0;
    await until(
      async () => (last = await open()) === 3,
      2000,
      () => `the stored entry still counts ${last} sockets of 3 after 2 s`,
    );
  } finally {
    await hub.stop();
    store.close();
  }
});
