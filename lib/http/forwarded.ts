/**
 * The last value of a forwarded header (`X-Forwarded-For`, `-Proto`,
 * `-Host`): the one our own proxy added. Values before it came from further
 * away, the client included, so they are not trusted.
 */
export function nearestHop(value: string | null): string | undefined {
  return value?.split(",").map((s) => s.trim()).filter(Boolean).at(-1);
}
