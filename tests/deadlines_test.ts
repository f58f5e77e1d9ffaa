import assert from "node:assert/strict";
import { Deadlines } from "../lib/realtime/deadlines.ts";

Deno.test("Deadlines fire each call once, never early, in time order", async () => {
  const deadlines = new Deadlines(20);
  const start = Date.now();
  const fired: [string, number][] = [];
  deadlines.schedule(start + 120, () => fired.push(["b", Date.now() - start]));
  deadlines.schedule(start + 40, () => fired.push(["a", Date.now() - start]));
  deadlines.schedule(start - 1000, () => fired.push(["past", Date.now() - start]));
  await new Promise((r) => setTimeout(r, 250));
  assert.deepEqual(fired.map(([name]) => name), ["past", "a", "b"]);
  assert.ok(fired[1][1] >= 40 && fired[1][1] < 120, `a at ${fired[1][1]} ms`);
  assert.ok(fired[2][1] >= 120 && fired[2][1] < 220, `b at ${fired[2][1]} ms`);
  deadlines.stop();
});

Deno.test("Deadline.cancel() drops the call, and the timer stops when nothing is left", async () => {
  const deadlines = new Deadlines(10);
  let calls = 0;
  const d = deadlines.schedule(Date.now() + 30, () => calls++);
  d.cancel();
  d.cancel();
  await new Promise((r) => setTimeout(r, 80));
  assert.equal(calls, 0);
  // Nothing scheduled: the sanitizer would fail this test if an interval were left running.
});
