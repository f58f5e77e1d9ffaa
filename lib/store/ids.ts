/**
 * ULIDs: 48 bits of time and 80 of randomness, in Crockford base32, so ids
 * sort by creation time. Randomness is drawn from a pool refilled in 4 KiB
 * gulps, one `getRandomValues` call per 409 ids rather than per character.
 */

const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const pool = new Uint8Array(4096);
let poolAt = pool.length;

function randomDigits(out: number[]): void {
  // 16 base32 digits of 5 bits each: one pool byte per digit, masked.
  if (poolAt + 16 > pool.length) {
    crypto.getRandomValues(pool);
    poolAt = 0;
  }
  for (let i = 0; i < 16; i++) out[i] = pool[poolAt++] & 31;
}

/** The 10 time digits of a ULID for epoch ms `at`. */
export function encodeTime(at: number): string {
  let t = Math.floor(at);
  let s = "";
  for (let i = 0; i < 10; i++) {
    s = ALPHABET[t % 32] + s;
    t = Math.floor(t / 32);
  }
  return s;
}

/**
 * Makes ULIDs that increase strictly within one millisecond: a second id in
 * the same millisecond is the previous random part plus one.
 */
export class UlidGenerator {
  #lastAt = -1;
  #time = "";
  #digits: number[] = new Array(16).fill(0);

  /** A new id for epoch ms `at` (now by default). */
  next(at = Date.now()): string {
    if (at === this.#lastAt) {
      let i = 15;
      while (i >= 0 && this.#digits[i] === 31) this.#digits[i--] = 0;
      // 2^80 ids in one millisecond will not happen; wrap rather than throw.
      if (i >= 0) this.#digits[i]++;
    } else {
      this.#lastAt = at;
      this.#time = encodeTime(at);
      randomDigits(this.#digits);
    }
    let s = this.#time;
    for (const d of this.#digits) s += ALPHABET[d];
    return s;
  }
}

/**
 * The smallest ULID of epoch ms `at`: every id made in that millisecond sorts
 * at or after it, so it bounds a KV range by time.
 */
export function smallestIdAt(at: number): string {
  return encodeTime(at) + "0".repeat(16);
}

const shared = new UlidGenerator();

/** A new ULID (monotonic within this isolate). */
export function newId(at?: number): string {
  return shared.next(at);
}
