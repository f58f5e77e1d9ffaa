import { type ApiKeyRecord, findApiKeyByHash, hashApiKey, recordKeyUse } from "./store.ts";

/**
 * How long this instance trusts what it read about a key. A revocation on
 * any instance is refused here at most this long later (CONTRACT: within 1 s).
 */
export const KEY_CACHE_TTL_MS = 500;
/** `lastUsedAt` is written at most this often per key and instance. */
export const KEY_USE_WRITE_EVERY_MS = 60_000;
/** Entries kept before the cache is emptied (unknown keys are cached too). */
const MAX_ENTRIES = 10_000;

/**
 * This instance's view of the API keys: each lookup by hash is answered from
 * memory for {@linkcode KEY_CACHE_TTL_MS}, then read again from KV. That
 * re-read is how a revocation made elsewhere arrives; it sits behind
 * {@linkcode KeyCache.lookup} and {@linkcode KeyCache.forget} alone, so a
 * cross-instance event feed can later replace the TTL by calling `forget`.
 */
export class KeyCache {
  #kv: Deno.Kv;
  #entries = new Map<string, { record: ApiKeyRecord | null; readAt: number }>();
  #usedWritten = new Map<string, number>();

  constructor(kv: Deno.Kv) {
    this.#kv = kv;
  }

  /** The record of `key` (revoked or not), or null for an unknown key. */
  async lookup(key: string): Promise<ApiKeyRecord | null> {
    const hash = await hashApiKey(key);
    const now = Date.now();
    const cached = this.#entries.get(hash);
    if (cached && now - cached.readAt < KEY_CACHE_TTL_MS) return cached.record;
    const record = await findApiKeyByHash(this.#kv, hash);
    if (this.#entries.size >= MAX_ENTRIES) this.#entries.clear();
    this.#entries.set(hash, { record, readAt: now });
    return record;
  }

  /** Drops what this instance knows about a key, so the next lookup reads KV. */
  forget(hash: string): void {
    this.#entries.delete(hash);
  }

  /** Notes a successful use; writes `lastUsedAt` at most once a minute per key. */
  async used(id: string, at = Date.now()): Promise<void> {
    const written = this.#usedWritten.get(id);
    if (written !== undefined && at - written < KEY_USE_WRITE_EVERY_MS) return;
    if (this.#usedWritten.size >= MAX_ENTRIES) this.#usedWritten.clear();
    this.#usedWritten.set(id, at);
    await recordKeyUse(this.#kv, id, at);
  }
}
