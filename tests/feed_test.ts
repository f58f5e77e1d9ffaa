/**
 * The feed between instances (lib/realtime/feed.ts): another instance's
 * events are handed over once, and a kv.watch that fails is logged and
 * opened again, so instant wake-ups do not end for the life of the instance.
 */
import assert from "node:assert/strict";
import { eventually, startTestServer } from "./helpers.ts";
import { appendEvent, Feed } from "../lib/realtime/feed.ts";
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
