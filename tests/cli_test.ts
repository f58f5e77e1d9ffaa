import assert from "node:assert/strict";
import { numberFlag } from "../lib/cli/cli.ts";

/** A `fail` that throws what it was told, so the test can read it. */
const fail = (message: string): never => {
  throw new Error(message);
};

Deno.test("numberFlag() returns the fallback when the flag is absent, else the number given", () => {
  assert.equal(numberFlag(fail, "run it", "rounds", undefined, 5, { min: 1, integer: true }), 5);
  assert.equal(numberFlag(fail, "run it", "rounds", "7", 5, { min: 1, integer: true }), 7);
  assert.equal(numberFlag(fail, "run it", "share", "0.25", 0, { min: 0, max: 1 }), 0.25);
});

Deno.test("numberFlag() fails with one line naming the flag, the range and the value", () => {
  assert.throws(
    () => numberFlag(fail, "run the soak", "minutes", "0", 10, { min: 0.1, max: 1440 }),
    {
      message:
        'Cannot run the soak as --minutes must be a number from 0.1 to 1440: current value is "0"',
    },
  );
  assert.throws(
    () => numberFlag(fail, "run the benchmark", "clients", "2.5", 10, { min: 2, integer: true }),
    {
      message:
        'Cannot run the benchmark as --clients must be an integer of at least 2: current value is "2.5"',
    },
  );
  for (const bad of ["abc", "", "Infinity", "NaN"]) {
    assert.throws(() => numberFlag(fail, "run it", "rounds", bad, 5, { min: 1 }), /--rounds/);
  }
});
