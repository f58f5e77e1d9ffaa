/** A loose check that a header gave us an IP address, not arbitrary text. */
const IP = /^(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f:.]{2,45})$/;

/**
 * The client's IP: the socket's peer, or, when `trustProxy` is set, the
 * nearest hop of `X-Forwarded-For` (the address our own proxy saw). A header
 * value that is not an address is ignored rather than stored.
 */
export function clientIp(
  headers: Headers,
  remote: string | undefined,
  trustProxy: boolean,
): string {
  if (trustProxy) {
    const forwarded = headers.get("x-forwarded-for");
    const hops = forwarded?.split(",").map((s) => s.trim()).filter(Boolean);
    const nearest = hops?.[hops.length - 1];
    if (nearest && IP.test(nearest)) return nearest;
  }
  return remote ?? "unknown";
}
