/**
 * The feed between instances (lib/realtime/feed.ts): another instance's
 * events are handed over once, and a kv.watch that fails is logged and
 * opened again, so instant wake-ups do not end for the life of the instance.
 */
import assert from "node:assert/strict";
import { eventually, startTestServer } from "./helpers.ts";
import { appendEvent, Feed } from "../lib/realtime/feed.ts";
import { newId } from "../lib/store/ids.ts";
import { feedEventKey, feedVersionKey } from "../lib/store/keys.ts";
import { createLogger } from "../lib/log.ts";

/** `kv` whose first `watch` stream fails a moment after it opens; counts the watches. */
function failingWatchKv(kv: Deno.Kv) {
  const watches = { opened: 0 };
  const wrapped = new Proxy(kv, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (prop !== "watch") return typeof value === "function" ? value.bind(target) : value;
      return (keys: Deno.KvKey[]) => {
        watches.opened++;
        if (watches.opened > 1) return target.watch(keys);
        return new ReadableStream<Deno.KvEntryMaybe<unknown>[]>({
          start(controller) {
            setTimeout(() => controller.error(new Error("watch stream lost")), 50);
          },
        });
      };
    },
  });
  return { kv: wrapped as Deno.Kv, watches };
}

Deno.test("startLookout() logs a failed kv.watch and watches again", async () => {
  const store = await Deno.openKv(":memory:");
  const { kv, watches } = failingWatchKv(store);
  try {
    await using server = await startTestServer({}, { kv });
    await eventually(
      () => server.logs.some((line) => line.includes("kv.watch failed")),
      3000,
      "a log line for the failed watch",
    );
    await eventually(() => watches.opened >= 2, 3000, "the watch to be opened again");
    const line = server.logs.find((l) => l.includes("kv.watch failed"))!;
    assert.match(line, /watch stream lost/);
  } finally {
    store.close();
  }
});

Deno.test("Feed hands an event appended on another handle to its handler once, and not its own", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lookout_feed_" });
  const path = `${dir}/kv.sqlite3`;
  const kvA = await Deno.openKv(path);
  const kvB = await Deno.openKv(path);
  const logger = createLogger({ write: () => {} });
  const feed = new Feed(kvB, { instanceId: "b", logger, pollMs: 50 });
  const seen: string[] = [];
  feed.on("revoked", (event) => seen.push(event.id));
  try {
    // Already there at the start: handled before it (the caller loads the state).
    await append(kvA, "before", "a");
    await feed.start();
    await append(kvA, "from-a", "a");
    await append(kvB, "from-b-itself", "b");
    await eventually(() => seen.includes("from-a"), 2000, "A's event on B");
    // Several more wake-ups re-read the look-back: nothing is handed over twice.
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(seen, ["from-a"]);
  } finally {
    await feed.stop();
    kvA.close();
    kvB.close();
    await Deno.remove(dir, { recursive: true });
  }
});

async function append(kv: Deno.Kv, id: string, origin: string): Promise<void> {
  const op = kv.atomic();
  appendEvent(op, "revoked", { id, jti: id, sid: null, until: Date.now() + 60_000 }, origin);
  assert.ok((await op.commit()).ok);
}

/** `kv` that counts the entries its `list` calls yield. */
function countingListKv(kv: Deno.Kv) {
  const listed = { entries: 0 };
  const wrapped = new Proxy(kv, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (prop !== "list") return typeof value === "function" ? value.bind(target) : value;
      return async function* (selector: Deno.KvListSelector, options?: Deno.KvListOptions) {
        for await (const entry of target.list(selector, options)) {
          listed.entries++;
          yield entry;
        }
      };
    },
  });
  return { kv: wrapped as Deno.Kv, listed };
}

/** Writes a feed event whose id is `ageMs` old, as a writer whose clock is behind would. */
async function appendOld(kv: Deno.Kv, id: string, ageMs: number): Promise<void> {
  const eventId = newId(Date.now() - ageMs);
  const event = {
    id: eventId,
    kind: "revoked",
    origin: "a",
    data: { id, jti: id, sid: null, until: Date.now() + 60_000 },
  };
  const op = kv.atomic().set(feedEventKey(eventId), event, { expireIn: 600_000 })
    .sum(feedVersionKey(), 1n);
  assert.ok((await op.commit()).ok);
}

Deno.test("Feed wake-ups list the last second of the feed, not the whole look-back", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lookout_feed_" });
  const path = `${dir}/kv.sqlite3`;
  const kvA = await Deno.openKv(path);
  const store = await Deno.openKv(path);
  const { kv: kvB, listed } = countingListKv(store);
  const logger = createLogger({ write: () => {} });
  // No poll during the test: only the wake-ups read.
  const feed = new Feed(kvB, { instanceId: "b", logger, pollMs: 60_000 });
  const seen: string[] = [];
  feed.on("revoked", (event) => seen.push(event.id));
  try {
    // 100 events of 5 s ago, within the 10 s look-back, already handled.
    for (let i = 0; i < 100; i++) await appendOld(kvA, `old-${i}`, 5000);
    await feed.start();
    const atStart = listed.entries;
    assert.equal(atStart, 100);
    for (let i = 0; i < 10; i++) {
      await append(kvA, `new-${i}`, "a");
      await eventually(() => seen.includes(`new-${i}`), 2000, `event new-${i}`);
    }
    // Listing the whole look-back on each of the 10 wake-ups lists the 100
    // old events every time (over 1,000 entries); a full read is allowed
    // once a second, so a slow machine may add one or two of them.
    assert.ok(
      listed.entries - atStart < 400,
      `10 wake-ups listed ${listed.entries - atStart} entries`,
    );
    assert.deepEqual(seen, Array.from({ length: 10 }, (_, i) => `new-${i}`));
  } finally {
    await feed.stop();
    kvA.close();
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Feed still hands over an event committed late with an id older than a second", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lookout_feed_" });
  const path = `${dir}/kv.sqlite3`;
  const kvA = await Deno.openKv(path);
  const kvB = await Deno.openKv(path);
  const logger = createLogger({ write: () => {} });
  const feed = new Feed(kvB, { instanceId: "b", logger, pollMs: 50 });
  const seen: string[] = [];
  feed.on("revoked", (event) => seen.push(event.id));
  try {
    await feed.start();
    await append(kvA, "fresh", "a");
    await eventually(() => seen.includes("fresh"), 2000, "the fresh event");
    // Its id says 3 s ago: only a read of the whole look-back finds it.
    await appendOld(kvA, "late", 3000);
    await eventually(() => seen.includes("late"), 5000, "the late event");
    assert.deepEqual(seen, ["fresh", "late"]);
  } finally {
    await feed.stop();
    kvA.close();
    kvB.close();
    await Deno.remove(dir, { recursive: true });
  }
});
