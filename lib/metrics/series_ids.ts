/**
 * Series ids remembered by name and labels: a push of 500 points usually
 * holds a few distinct series, so the SHA-256 of {@linkcode seriesId} is
 * computed once per distinct series an instance sees, not once per point.
 */
import { seriesId } from "./points.ts";

/**
 * A string that tells series apart without sorting or hashing: the name,
 * then each label as `,key=length:value` in the object's own order. Names
 * and label keys cannot hold `,`, `=` or `:`, and the length says where a
 * value ends, so two different name+labels never share it; one series
 * given with its labels in two orders has two of them (both map to the
 * same id).
 */
export function seriesLookupKey(name: string, labels: Record<string, string>): string {
  let key = name;
  for (const label in labels) {
    const value = labels[label];
    key += "," + label + "=" + value.length + ":" + value;
  }
  return key;
}

/** Remembers the ids of the last `max` series looked up (least recently used goes first). */
export class SeriesIds {
  #max: number;
  #ids = new Map<string, string>();

  constructor(options: { max: number }) {
    if (!Number.isInteger(options.max) || options.max < 1) {
      throw new RangeError(
        `Cannot remember series ids as 'max' must be a positive integer: current value is ${options.max}`,
      );
    }
    this.#max = options.max;
  }

  /**
   * The remembered id of the series of `key` ({@linkcode seriesLookupKey}),
   * without waiting: a push's known series cost no promise each.
   */
  known(key: string): string | undefined {
    const known = this.#ids.get(key);
    if (known !== undefined) {
      // Moved to the end of the map's order, so eviction drops the least recently used.
      this.#ids.delete(key);
      this.#ids.set(key, known);
    }
    return known;
  }

  /** The id of the series of `key` ({@linkcode seriesLookupKey} of `name` and `labels`). */
  async idOf(key: string, name: string, labels: Record<string, string>): Promise<string> {
    const known = this.known(key);
    if (known !== undefined) return known;
    const id = await seriesId(name, labels);
    this.#ids.set(key, id);
    if (this.#ids.size > this.#max) this.#ids.delete(this.#ids.keys().next().value!);
    return id;
  }

  /** How many ids are remembered. */
  get size(): number {
    return this.#ids.size;
  }
}
