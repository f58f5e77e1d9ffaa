/**
 * How metric numbers live in KvU64 values, so that every write to a bucket
 * is a KV `sum`, `min` or `max` that commutes: any number of requests and
 * instances can write one bucket at once without a lost update.
 *
 * - Sums (counter totals, gauge and histogram sums) are fixed-point
 *   thousandths in two's complement: `sum` wraps modulo 2^64, so adding a
 *   negative value is adding its complement, and the total read back as a
 *   signed 64-bit integer is exact to 0.001 while within ±9.2e15.
 * - Minimums and maximums use an order-preserving map of the float64 bits
 *   (flip every bit of a negative, the sign bit of the rest), so KV's
 *   unsigned `min`/`max` order the values as numbers.
 * - Histogram observations fall in logarithmic bins (DDSketch's mapping with
 *   1 % relative accuracy): a bin's count is a KvU64 sum, and a percentile read
 *   from the bins is within 1 % of a value of the right rank.
 */

/** Fixed-point scale of sums: thousandths. */
export const FIXED_SCALE = 1000;
/** Largest magnitude a single point may have, so sums stay far from overflow. */
export const MAX_ABS_VALUE = 1e12;

const U64 = 64;

/** A value as fixed-point thousandths, in two's complement. */
export function encodeFixed(value: number): bigint {
  return BigInt.asUintN(U64, BigInt(Math.round(value * FIXED_SCALE)));
}

/** A fixed-point sum back as a number. */
export function decodeFixed(stored: bigint): number {
  return Number(BigInt.asIntN(U64, stored)) / FIXED_SCALE;
}

const view = new DataView(new ArrayBuffer(8));
const SIGN = 1n << 63n;
const ALL = (1n << 64n) - 1n;

/** A float64 mapped to a u64 whose unsigned order is the numbers' order. */
export function encodeOrdered(value: number): bigint {
  view.setFloat64(0, value === 0 ? 0 : value);
  const bits = view.getBigUint64(0);
  return bits & SIGN ? ~bits & ALL : bits | SIGN;
}

/** The inverse of {@linkcode encodeOrdered}. */
export function decodeOrdered(stored: bigint): number {
  const bits = stored & SIGN ? stored & ~SIGN : ~stored & ALL;
  view.setBigUint64(0, bits);
  return view.getFloat64(0);
}

/** Relative accuracy of the histogram bins. */
export const RELATIVE_ACCURACY = 0.01;
const GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY);
const LOG_GAMMA = Math.log(GAMMA);
/** Magnitudes below this share the zero bin. */
const MIN_MAGNITUDE = 1e-9;

/** A histogram bin: sign (`n`, `z`, `p`) and the log index of the magnitude. */
export type Bin = { sign: "n" | "z" | "p"; index: number };

/** The bin an observation falls in. */
export function binOf(value: number): Bin {
  const magnitude = Math.abs(value);
  if (magnitude < MIN_MAGNITUDE) return { sign: "z", index: 0 };
  return { sign: value < 0 ? "n" : "p", index: Math.ceil(Math.log(magnitude) / LOG_GAMMA) };
}

/** The value a bin stands for: within 1 % of every value in it. */
export function binValue(bin: Bin): number {
  if (bin.sign === "z") return 0;
  const magnitude = (2 * Math.pow(GAMMA, bin.index)) / (GAMMA + 1);
  return bin.sign === "n" ? -magnitude : magnitude;
}

/** A bin's place in numeric order, for sorting bins. */
export function binOrder(bin: Bin): number {
  if (bin.sign === "z") return 0;
  // Indexes lie within about ±2100 for float64 magnitudes of 1e-9 and up.
  return bin.sign === "p" ? 10_000 + bin.index : -10_000 - bin.index;
}

/**
 * The `q` quantile (0 to 1) from bin counts: the bin holding the value of
 * rank `q * (count - 1)`, clamped to the observed minimum and maximum.
 */
export function quantileFromBins(
  bins: { bin: Bin; count: number }[],
  q: number,
  bounds: { min: number; max: number },
): number | null {
  const sorted = [...bins].filter((b) => b.count > 0).sort((a, b) =>
    binOrder(a.bin) - binOrder(b.bin)
  );
  const total = sorted.reduce((n, b) => n + b.count, 0);
  if (total === 0) return null;
  const rank = q * (total - 1);
  let seen = 0;
  for (const { bin, count } of sorted) {
    seen += count;
    if (seen > rank) return Math.min(bounds.max, Math.max(bounds.min, binValue(bin)));
  }
  return bounds.max;
}
