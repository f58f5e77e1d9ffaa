/**
 * A socket's subscriptions as bits of `EVENTS`, one number per socket: a Set
 * per socket costs memory at 10k sockets.
 *
 * @module
 */
import { type EventName, EVENTS } from "../../shared/protocol.ts";
import { encode } from "../../shared/protocol_encode.ts";
import type { Connection } from "./connection.ts";
import type { ConnectionDeps } from "./connection_deps.ts";

/** The events whose bits are set in `bits`. */
export function eventSet(bits: number): Set<EventName> {
  return new Set(EVENTS.filter((_, i) => bits & (1 << i)));
}

/** `bits` with the bits of `events` set (`on`) or cleared. */
export function withEvents(bits: number, on: boolean, events: readonly EventName[]): number {
  for (const e of events) {
    const bit = 1 << EVENTS.indexOf(e);
    bits = on ? bits | bit : bits & ~bit;
  }
  return bits;
}

/**
 * After `conn` changed its subscriptions from `before` (bits): tells the
 * registry, answers `subscribed`, and sends a new presence subscriber the
 * presence list.
 */
export async function subscribed(
  conn: Connection,
  deps: Pick<ConnectionDeps, "registry" | "stats">,
  before: number,
): Promise<void> {
  deps.registry.subscriptions(conn, conn.events);
  conn.send(encode({ type: "subscribed", events: [...conn.events].sort() }));
  if (!eventSet(before).has("presence") && conn.events.has("presence")) {
    await deps.stats.sendPresenceTo(conn);
  }
}
