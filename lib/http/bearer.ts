/** Parsing the `Authorization: Bearer` header, for the socket gate and the API. */

/**
 * The credentials of an `Authorization: Bearer` header, everything after the
 * scheme and its space ("" when there is none), for
 * `verifyAccessToken` (lib/auth/tokens.ts) to judge: a space inside is a malformed
 * token, not another scheme. `null` when the header is absent or another
 * scheme (Basic from a proxy's auth_basic), which is not ours.
 */
export function bearerCredentials(header: string | undefined): string | null {
  const bearer = /^Bearer(?:[ \t]+(.*))?$/is.exec(header ?? "");
  return bearer ? bearer[1] ?? "" : null;
}
