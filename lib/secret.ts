import { jwtSecretKey } from "./kv_keys.ts";
import type { Logger } from "./log.ts";

/**
 * Returns the HS256 secret: `JWT_SECRET` when it is set, otherwise one
 * generated on first use and kept in KV. Two processes starting at once agree
 * on one secret: the write only lands when no secret is stored yet.
 */
export async function resolveJwtSecret(
  kv: Deno.Kv,
  configured: string | undefined,
  logger: Logger,
): Promise<string> {
  if (configured !== undefined) return configured;
  const key = jwtSecretKey();
  const stored = await kv.get<string>(key);
  if (typeof stored.value === "string") return stored.value;
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  const secret = btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-")
    .replace(/\//g, "_").replace(/=+$/, "");
  const result = await kv.atomic().check(stored).set(key, secret).commit();
  if (!result.ok) {
    const winner = await kv.get<string>(key);
    return winner.value!;
  }
  logger.info(
    "JWT_SECRET is not set: generated a secret and kept it in KV; set JWT_SECRET to use your own",
  );
  return secret;
}
