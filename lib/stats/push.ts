/**
 * What each socket is sent of the stats: a `stats_update` (or `presence`)
 * only when a count differs from the last one that socket was sent, so a
 * socket sent its first stats on arrival does not get the same counts again
 * from the next push. `at` and `uptimeS` alone are no change (CONTRACT 9).
 */
import type { Stats } from "../../shared/protocol.ts";
import { presenceUpdate, statsUpdate } from "../../shared/protocol_encode.ts";
import type { Member, Registry } from "../realtime/registry.ts";

/** See the module doc. */
export class StatsPush {
  #registry: Registry<Member>;
  /** What was last pushed to everyone, as counts without `at` and `uptimeS`. */
  #pushed = { stats: "", presence: "" };
  /** What each socket was last sent (weakly held: sockets come and go). */
  #sent = { stats: new WeakMap<Member, string>(), presence: new WeakMap<Member, string>() };
  /**
   * The last signature made: an equal one made later is replaced by it, so
   * sockets sent the same counts share one string rather than each keeping
   * a copy of its own (about 700 bytes a socket at 10k).
   */
  #lastSignature = "";

  constructor(registry: Registry<Member>) {
    this.#registry = registry;
  }

  /**
   * Pushes `stats` to the subscribers whose last copy differs in a count;
   * says whether the counts or presence changed since the last push.
   */
  publish(stats: Stats): boolean {
    let changed = false;
    const signature = this.#shared(signatureOf(stats));
    if (signature !== this.#pushed.stats) {
      this.#pushed.stats = signature;
      changed = true;
      // Serialized once, sent as the same string to every subscriber.
      const message = statsUpdate(stats);
      for (const m of this.#registry.subscribers("stats")) {
        if (this.#sent.stats.get(m) === signature) continue;
        this.#sent.stats.set(m, signature);
        m.send(message);
      }
    }
    const presence = JSON.stringify(stats.presence);
    if (presence !== this.#pushed.presence) {
      this.#pushed.presence = presence;
      changed = true;
      const message = presenceUpdate(stats.presence);
      for (const m of this.#registry.subscribers("presence")) {
        if (this.#sent.presence.get(m) === presence) continue;
        this.#sent.presence.set(m, presence);
        m.send(message);
      }
    }
    return changed;
  }

  /** Sends `member` `stats`; unless `always`, only when its counts differ from its last copy. */
  sendTo(member: Member, stats: Stats, options: { always: boolean }): void {
    const signature = this.#shared(signatureOf(stats));
    if (!options.always && this.#sent.stats.get(member) === signature) return;
    this.#sent.stats.set(member, signature);
    member.send(statsUpdate(stats));
  }

  #shared(signature: string): string {
    return signature === this.#lastSignature
      ? this.#lastSignature
      : this.#lastSignature = signature;
  }

  /** Sends `member` the presence in `stats` (it just subscribed to it). */
  sendPresenceTo(member: Member, stats: Stats): void {
    this.#sent.presence.set(member, JSON.stringify(stats.presence));
    member.send(presenceUpdate(stats.presence));
  }
}

/** The stats without `at` and `uptimeS`. */
function signatureOf(stats: Stats): string {
  const { at: _at, uptimeS: _up, ...rest } = stats;
  return JSON.stringify(rest);
}
