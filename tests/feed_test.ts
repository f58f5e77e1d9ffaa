/**
 * The feed between instances (lib/realtime/feed.ts): a kv.watch that fails
 * is logged and opened again, so instant wake-ups do not end for the life
 * of the instance.
 */
import assert from "node:assert/strict";
import { eventually, startTestServer } from "./helpers.ts";

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
