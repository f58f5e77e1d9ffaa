/**
 * One timer per instance for every socket's deadlines (auth timeout, the
 * expiry warning, the expiry itself, a quiet close). A setTimeout per
 * deadline costs a timer object per socket, several per authenticated one;
 * at 10k sockets that is measurable memory. Deadlines fire in ticks of
 * `tickMs`, never early.
 */
export class Deadlines {
  #tickMs: number;
  #buckets = new Map<number, Set<Deadline>>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #next = 0;

  constructor(tickMs = 50) {
    this.#tickMs = tickMs;
  }

  /** Runs `fn` at epoch ms `at` (at the next tick when `at` has passed). */
  schedule(at: number, fn: () => void): Deadline {
    if (this.#timer === undefined) {
      this.#next = Math.floor(Date.now() / this.#tickMs);
      this.#timer = setInterval(() => this.#tick(), this.#tickMs);
    }
    // A deadline already due goes in the next slot the wheel will reach.
    const slot = Math.max(Math.ceil(at / this.#tickMs), this.#next);
    const deadline = new Deadline(fn, this, slot);
    let bucket = this.#buckets.get(slot);
    if (!bucket) this.#buckets.set(slot, bucket = new Set());
    bucket.add(deadline);
    return deadline;
  }

  /** Cancels every deadline and stops the timer. */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#buckets.clear();
  }

  /** @internal */
  drop(deadline: Deadline, slot: number): void {
    const bucket = this.#buckets.get(slot);
    bucket?.delete(deadline);
    if (bucket?.size === 0) this.#buckets.delete(slot);
  }

  #tick(): void {
    const now = Math.floor(Date.now() / this.#tickMs);
    // Slot by slot: usually one per tick, more after the loop was busy.
    while (this.#next <= now) {
      const bucket = this.#buckets.get(this.#next);
      this.#next++;
      if (!bucket) continue;
      this.#buckets.delete(this.#next - 1);
      for (const deadline of bucket) deadline.fire();
    }
    if (this.#buckets.size === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }
}

/** A scheduled call; cancel it to drop it. */
export class Deadline {
  #fn: (() => void) | null;
  #owner: Deadlines;
  #slot: number;

  constructor(fn: () => void, owner: Deadlines, slot: number) {
    this.#fn = fn;
    this.#owner = owner;
    this.#slot = slot;
  }

  cancel(): void {
    if (this.#fn === null) return;
    this.#fn = null;
    this.#owner.drop(this, this.#slot);
  }

  /** @internal */
  fire(): void {
    const fn = this.#fn;
    this.#fn = null;
    fn?.();
  }
}
