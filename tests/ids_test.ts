import assert from "node:assert/strict";
import { decodeTime, isValid } from "ulid";
import { encodeTime, newId, UlidGenerator } from "../lib/store/ids.ts";

Deno.test("newId() makes valid ULIDs that carry their time", () => {
  const at = Date.UTC(2026, 10, 22, 4, 5, 6, 789);
  const id = newId(at);
  assert.ok(isValid(id), id);
  assert.equal(decodeTime(id), at);
  assert.equal(encodeTime(at), id.slice(0, 10));
});

Deno.test("UlidGenerator.next() increases strictly within one millisecond and across them", () => {
  const gen = new UlidGenerator();
  const ids = [];
  for (let i = 0; i < 5000; i++) ids.push(gen.next(1_700_000_000_000 + Math.floor(i / 1000)));
  for (let i = 1; i < ids.length; i++) assert.ok(ids[i - 1] < ids[i], `${ids[i - 1]} < ${ids[i]}`);
  assert.equal(new Set(ids).size, ids.length);
});

Deno.test("newId() random parts differ between milliseconds", () => {
  const a = newId(1_000);
  const b = newId(2_000);
  assert.notEqual(a.slice(10), b.slice(10));
});
