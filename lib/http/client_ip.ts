import { isIP } from "node:net";
import { nearestHop } from "./forwarded.ts";

/**
 * Whether `value` is an IPv4 address in dotted decimal or an IPv6 address,
 * strictly (`999.999.999.999`, `cafe` or `::::` are not). A zone (`%eth0`)
 * is refused too: it names an interface of the proxy, not the client.
 */
function isAddress(value: string): boolean {
  return isIP(value) !== 0 && !value.includes("%");
}

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
    const nearest = nearestHop(headers.get("x-forwarded-for"));
    if (nearest && isAddress(nearest)) return nearest;
  }
  return remote ?? "unknown";
}
