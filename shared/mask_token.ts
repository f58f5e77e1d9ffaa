/**
 * Shows enough of a token to tell two apart, never enough to use: its first
 * 8 characters and an ellipsis. A token of 8 characters or fewer would be
 * shown whole that way, so it shows as the ellipsis alone.
 *
 * Imports nothing: the debug page, the probe and the server share it.
 */
export function maskToken(token: string): string {
  return token.length <= 8 ? "…" : `${token.slice(0, 8)}…`;
}
