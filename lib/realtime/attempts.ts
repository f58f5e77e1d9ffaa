/**
 * Live `attempt` events: this instance's own go straight to its subscribers
 * when they are durable; the other instances' are read from the attempt log
 * itself (`attempts`, by ULID of their time) whenever the stats version
 * moves, which every attempt commit bumps. Nothing is read while no socket
 * here subscribes to `attempts`.
 */
import { encodeTime } from "../store/ids.ts";
import { attemptsPrefix } from "../store/keys.ts";
import type { Logger } from "../log.ts";
import { attemptEvent } from "../../shared/protocol_encode.ts";
import type { Attempt } from "../../shared/protocol.ts";
import type { Member, Registry } from "./registry.ts";

/** Attempts are listed again for this long: a batch commits a little after its ids' time. */
const LOOKBACK_MS = 5_000;
/**
 * Shortest gap between two reads: every attempt commit and every changed
 * instance entry moves the stats version, and a read lists the whole
 * look-back, so under a flood the reads are spaced rather than back to back.
 */
const READ_GAP_MS = 100;

/** Options of {@linkcode AttemptFanout}. */
export interface AttemptFanoutOptions {
  logger: Logger;
  /**
   * Resolves once this instance's attempt commit in flight, if any, has been
   * reported to {@linkcode AttemptFanout.recorded} (`AttemptLog.settled`),
   * so a tail read never takes one of our own for another instance's.
   */
  ownCommitsSettled: () => Promise<void>;
}

/** Sends attempts to `attempts` subscribers; see the module doc. */
export class AttemptFanout {
  #kv: Deno.Kv;
  #registry: Registry<Member>;
  #o: AttemptFanoutOptions;
  /** Ids already sent, with when: this instance's own, and the tail's. */
  #seen = new Map<string, number>();
  #reading: Promise<void> | null = null;
  #again = false;

  constructor(kv: Deno.Kv, registry: Registry<Member>, options: AttemptFanoutOptions) {
    this.#kv = kv;
    this.#registry = registry;
    this.#o = options;
  }

  /** This instance's attempts, durable now: sent at once. */
  recorded(attempts: Attempt[]): void {
    if (!this.#registry.hasSubscribers("attempts")) return;
    const now = Date.now();
    for (const attempt of attempts) {
      this.#seen.set(attempt.id, now);
      this.#registry.publish("attempts", attemptEvent(attempt));
    }
  }

  /** Some instance committed attempts: reads what is new (one read at a time). */
  tail(): void {
    if (this.#registry.subscribedSince("attempts") === null) return;
    if (this.#reading) {
      this.#again = true;
      return;
    }
    this.#reading = this.#read().finally(async () => {
      await new Promise((resolve) => setTimeout(resolve, READ_GAP_MS));
      this.#reading = null;
      if (this.#again) {
        this.#again = false;
        this.tail();
      }
    });
  }

  /** Resolves once no read is running. */
  async settled(): Promise<void> {
    while (this.#reading) await this.#reading;
  }

  async #read(): Promise<void> {
    const since = this.#registry.subscribedSince("attempts");
    if (since === null) return;
    const now = Date.now();
    try {
      await this.#o.ownCommitsSettled();
      const found: Attempt[] = [];
      // From the millisecond after the first subscription: an attempt of
      // that very millisecond may be one committed before it (the
      // subscriber's own authentication), which it was never to be sent.
      const from = Math.max(since + 1, now - LOOKBACK_MS);
      const start = [...attemptsPrefix(), encodeTime(from)];
      const end = [...attemptsPrefix(), "\u{10FFFF}"];
      for await (const e of this.#kv.list<Attempt>({ start, end })) found.push(e.value);
      // A commit of ours that the list saw may not be reported yet: let it be.
      await this.#o.ownCommitsSettled();
      for (const attempt of found) {
        if (this.#seen.has(attempt.id)) continue;
        this.#seen.set(attempt.id, now);
        const { expiresAt: _, ...record } = attempt as Attempt & { expiresAt?: number };
        this.#registry.publish("attempts", attemptEvent(record));
      }
    } catch (error) {
      this.#o.logger.warn("cannot read other instances' attempts", { error });
    }
    for (const [id, at] of this.#seen) if (now - at > 2 * LOOKBACK_MS) this.#seen.delete(id);
  }
}
