/**
 * Keeps this instance's entry in KV (its counts and presence, which the
 * other instances sum) current: written soon after each change of its own,
 * and at every heartbeat so that the others know it is alive.
 */
import { type InstanceEntry, writeInstance } from "./instances.ts";
import type { Logger } from "../log.ts";

/** Shortest gap between two writes of the entry. */
const WRITE_GAP_MS = 100;

/** Options of {@linkcode InstanceEntryWriter}. */
export interface InstanceEntryWriterOptions {
  logger: Logger;
  /** This instance's entry as it is now. */
  entry: () => InstanceEntry;
  /** How often the entry is rewritten even when nothing changed. */
  heartbeatMs: number;
}

/** See the module doc. One write at a time; a change during one is written after it. */
export class InstanceEntryWriter {
  #kv: Deno.Kv;
  #o: InstanceEntryWriterOptions;
  /** The entry changed since it was last written. */
  #dirty = true;
  #lastWrite = 0;
  /** A write failed since the last heartbeat: wait for the next one. */
  #failed = false;
  #writing: Promise<void> | null = null;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #stopped = false;

  constructor(kv: Deno.Kv, options: InstanceEntryWriterOptions) {
    this.#kv = kv;
    this.#o = options;
  }

  /**
   * The entry changed: it is written soon, apart from the push window. The
   * window paces pushes to sockets; holding the entry back with it would add
   * a second to what the other instances see.
   */
  changed(): void {
    this.#dirty = true;
    if (this.#stopped || this.#failed || this.#writing !== null || this.#timer !== undefined) {
      return;
    }
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (!this.#stopped && this.#writing === null && this.#dirty) this.#write();
    }, Math.max(0, this.#lastWrite + WRITE_GAP_MS - Date.now()));
  }

  /**
   * A heartbeat (or any stats refresh): writes the entry if it changed or
   * the heartbeat is due. The write runs beside the caller's read: a write
   * slowed by a busy store must not hold up the next refresh.
   */
  beat(now = Date.now()): void {
    if (this.#stopped || this.#writing !== null) return;
    if (this.#dirty || now - this.#lastWrite >= this.#o.heartbeatMs) this.#write();
  }

  /** Stops writing; resolves once a write in flight is done. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#writing;
  }

  #write(): void {
    // Only a changed entry bumps the stats version, which wakes the others;
    // a heartbeat that changed nothing but the time need not wake anyone.
    const announce = this.#dirty;
    this.#dirty = false;
    this.#failed = false;
    this.#lastWrite = Date.now();
    this.#writing = (async () => {
      try {
        await writeInstance(this.#kv, this.#o.entry(), { announce });
      } catch (error) {
        // Written again at the next heartbeat, not at each change: a store
        // that is down gets one try, and one warning, per beat.
        this.#dirty = true;
        this.#failed = true;
        this.#o.logger.warn("cannot write this instance's entry", { error });
        return;
      } finally {
        this.#writing = null;
      }
      // A change that came during the write is not in it: write again.
      if (this.#dirty) this.changed();
    })();
  }
}
