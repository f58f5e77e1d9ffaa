/**
 * API keys in KV: a record per key holding its SHA-256, never the key, and
 * an index from the hash to the id. The raw key exists only in the answer
 * that created it (CONTRACT 7.1).
 */
import { newId } from "../store/ids.ts";
import { apiKeyByHashKey, apiKeyKey, apiKeyLastUsedKey, apiKeysPrefix } from "../store/keys.ts";

/** What a key may do: push points, or read them. */
export const KEY_SCOPES = ["ingest", "read"] as const;
export type KeyScope = typeof KEY_SCOPES[number];

/** A key as stored. */
export interface ApiKeyRecord {
  id: string;
  name: string;
  scope: KeyScope;
  createdAt: number;
  /** SHA-256 of the key, hex. */
  hash: string;
  revokedAt: number | null;
}

/** A key as listed: no hash, and when it was last used. */
export interface ApiKeyInfo {
  id: string;
  name: string;
  scope: KeyScope;
  createdAt: number;
  lastUsedAt: number | null;
}

/** Random bytes in a key: 32, as the contract asks at least. */
const KEY_BYTES = 32;
/** Longest key name. */
export const MAX_KEY_NAME = 64;

/** SHA-256 of a key, hex: what KV holds in the key's place. */
export async function hashApiKey(key: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(key));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Thrown for a key name or scope that cannot be stored. */
export class KeyInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "KeyInputError";
  }
}

/** Creates a key; the returned `key` is the only copy of it anywhere. */
export async function createApiKey(
  kv: Deno.Kv,
  input: { name: string; scope: KeyScope },
): Promise<{ record: ApiKeyRecord; key: string }> {
  const name = input.name.trim();
  if (name.length < 1 || name.length > MAX_KEY_NAME) {
    throw new KeyInputError(
      `Cannot create a key as its name must be 1 to ${MAX_KEY_NAME} characters: current length is ${name.length}`,
    );
  }
  if (!KEY_SCOPES.includes(input.scope)) {
    throw new KeyInputError(
      `Cannot create a key as its scope must be ingest or read: current value is ${
        JSON.stringify(input.scope)
      }`,
    );
  }
  const key = "lk_" +
    crypto.getRandomValues(new Uint8Array(KEY_BYTES)).toBase64({
      alphabet: "base64url",
      omitPadding: true,
    });
  const record: ApiKeyRecord = {
    id: newId(),
    name,
    scope: input.scope,
    createdAt: Date.now(),
    hash: await hashApiKey(key),
    revokedAt: null,
  };
  const result = await kv.atomic()
    .check({ key: apiKeyByHashKey(record.hash), versionstamp: null })
    .set(apiKeyKey(record.id), record)
    .set(apiKeyByHashKey(record.hash), record.id)
    .commit();
  if (!result.ok) throw new Error("Cannot create a key as its hash is already taken");
  return { record, key };
}

/** The record of the key with this hash, revoked or not; null when unknown. */
export async function findApiKeyByHash(
  kv: Deno.Kv,
  hash: string,
): Promise<ApiKeyRecord | null> {
  const id = await kv.get<string>(apiKeyByHashKey(hash));
  if (id.value === null) return null;
  return (await kv.get<ApiKeyRecord>(apiKeyKey(id.value))).value;
}

/** Every key not revoked, oldest first, with its last use. */
export async function listApiKeys(kv: Deno.Kv): Promise<ApiKeyInfo[]> {
  const records: ApiKeyRecord[] = [];
  for await (const entry of kv.list<ApiKeyRecord>({ prefix: apiKeysPrefix() })) {
    if (entry.value.revokedAt === null) records.push(entry.value);
  }
  const used = new Map<string, number>();
  for (let i = 0; i < records.length; i += 10) {
    const chunk = records.slice(i, i + 10);
    const entries = await kv.getMany<number[]>(chunk.map((r) => apiKeyLastUsedKey(r.id)));
    entries.forEach((e, j) => {
      if (typeof e.value === "number") used.set(chunk[j].id, e.value);
    });
  }
  return records.map((r) => ({
    id: r.id,
    name: r.name,
    scope: r.scope,
    createdAt: r.createdAt,
    lastUsedAt: used.get(r.id) ?? null,
  }));
}

/**
 * Marks a key revoked (the record stays, so a revoked key is told apart
 * from an unknown one in the attempt log). Returns the revoked record, or
 * null for an unknown or already revoked id.
 */
export async function revokeApiKey(kv: Deno.Kv, id: string): Promise<ApiKeyRecord | null> {
  for (;;) {
    const entry = await kv.get<ApiKeyRecord>(apiKeyKey(id));
    if (entry.value === null || entry.value.revokedAt !== null) return null;
    const revoked = { ...entry.value, revokedAt: Date.now() };
    const result = await kv.atomic().check(entry).set(apiKeyKey(id), revoked).commit();
    if (result.ok) return revoked;
  }
}

/** Stores when a key was last used, never moving it back. */
export async function recordKeyUse(kv: Deno.Kv, id: string, at: number): Promise<void> {
  // Only a later time wins, so instances writing out of order cannot move it back.
  for (let i = 0; i < 5; i++) {
    const entry = await kv.get<number>(apiKeyLastUsedKey(id));
    if (typeof entry.value === "number" && entry.value >= at) return;
    if ((await kv.atomic().check(entry).set(apiKeyLastUsedKey(id), at).commit()).ok) return;
  }
}
