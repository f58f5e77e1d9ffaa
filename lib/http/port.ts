/**
 * Whether another process already serves `hostname:port`. Bound without
 * `reusePort` on purpose: Lookout's workers share their port with
 * SO_REUSEPORT, which would let an independent Lookout (another store,
 * other users) bind beside them and answer half the requests; a plain bind
 * is refused by a port served with or without it.
 *
 * A check, then a bind: two processes started in the same few milliseconds
 * can both pass it. That is the start-up mistake of one operator, not a
 * race an outsider can drive, and no bind that workers can still share
 * would close it.
 */
export function portInUse(hostname: string, port: number): boolean {
  // Port 0 is "any free port": it is never in use.
  if (port === 0) return false;
  try {
    Deno.listen({ hostname, port }).close();
    return false;
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) return true;
    throw error;
  }
}
