import { jwtSecretKey } from "../store/keys.ts";
import { retryLocked } from "../store/kv.ts";
import type { Logger } from "../log.ts";

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
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  const secret = bytes.toBase64({ alphabet: "base64url", omitPadding: true });
  // Read and write again after a busy file, so the loser of a race reads the winner's secret.
  const result = await retryLocked(async () => {
    const stored = await kv.get<string>(key);
    if (typeof stored.value === "string") return stored.value;
    const commit = await kv.atomic().check(stored).set(key, secret).commit();
    return commit.ok ? null : (await kv.get<string>(key)).value!;
  });
  if (result !== null) return result;
  logger.info(
    "JWT_SECRET is not set: generated a secret and kept it in KV; set JWT_SECRET to use your own",
  );
  return secret;
}
