/**
 * The line protocol's numbers and words: 64-bit integers checked against
 * their range, floats by the grammar InfluxDB accepts, and the boolean
 * spellings. Each reads a span of the body without copying it first.
 *
 * @module
 */
import { DOT, MINUS, NINE, PLUS, ZERO } from "./line_protocol_chars.ts";

/** The boolean spellings InfluxDB accepts, and their values. */
export const BOOLEANS: Record<string, boolean> = {
  t: true,
  T: true,
  true: true,
  True: true,
  TRUE: true,
  f: false,
  F: false,
  false: false,
  False: false,
  FALSE: false,
};

/** The 64-bit ranges of integer and unsigned field values and of timestamps. */
export const INT64_MIN = -(2n ** 63n);
export const INT64_MAX = 2n ** 63n - 1n;
export const UINT64_MAX = 2n ** 64n - 1n;

/**
 * The decimal integer `body[from, to)` (a leading `-` when `signed`) as a
 * number; "syntax" when it is not one, "range" when it lies outside
 * `[min, max]`. Leading zeros are skipped before the length check, so a huge
 * digit run is refused without converting it.
 */
export function integer(
  body: string,
  from: number,
  to: number,
  signed: boolean,
  min: bigint,
  max: bigint,
): number | "syntax" | "range" {
  let i = from;
  if (signed && i < to && body.charCodeAt(i) === MINUS) i++;
  if (i === to) return "syntax";
  for (let j = i; j < to; j++) {
    if (!isDigit(body.charCodeAt(j))) return "syntax";
  }
  while (i < to - 1 && body.charCodeAt(i) === ZERO) i++;
  // 2^64 has 20 digits: a longer run is out of range without converting it.
  if (to - i > 20) return "range";
  // Below 20 digits only a signed run starting with 9 can pass 2^63 - 1 (a
  // nanosecond timestamp has 19 digits starting with 1): skip the bigint otherwise.
  if (to - i === 20 || (to - i === 19 && signed && body.charCodeAt(i) === NINE)) {
    const big = bigInteger(body, from, to);
    if (big < min || big > max) return "range";
  }
  return Number(body.slice(from, to));
}

/** `body[from, to)`, already checked to be `-?digits`, as a bigint; leading zeros skipped. */
export function bigInteger(body: string, from: number, to: number): bigint {
  const negative = body.charCodeAt(from) === MINUS;
  let i = negative ? from + 1 : from;
  while (i < to - 1 && body.charCodeAt(i) === ZERO) i++;
  const magnitude = BigInt(body.slice(i, to));
  return negative ? -magnitude : magnitude;
}

/** `-?(digits[.digits*]|.digits)([eE][+-]?digits)?` over `body[from, to)`. */
export function isFloat(body: string, from: number, to: number): boolean {
  let i = from;
  if (i < to && body.charCodeAt(i) === MINUS) i++;
  let digits = 0;
  while (i < to && isDigit(body.charCodeAt(i))) i++, digits++;
  if (i < to && body.charCodeAt(i) === DOT) {
    i++;
    while (i < to && isDigit(body.charCodeAt(i))) i++, digits++;
  }
  if (digits === 0) return false;
  if (i < to && (body.charCodeAt(i) === 101 /* e */ || body.charCodeAt(i) === 69 /* E */)) {
    i++;
    if (i < to && (body.charCodeAt(i) === PLUS || body.charCodeAt(i) === MINUS)) i++;
    let exponent = 0;
    while (i < to && isDigit(body.charCodeAt(i))) i++, exponent++;
    if (exponent === 0) return false;
  }
  return i === to;
}

function isDigit(c: number): boolean {
  return c >= ZERO && c <= NINE;
}
