/**
 * The keys of one trusted issuer (CONTRACT 8): its JWKS, fetched and cached
 * for that issuer alone, or its configured PEM key. One instance per issuer,
 * never one shared cache: a key is found by (issuer, `kid`), so a `kid` two
 * issuers share cannot let one issuer's key verify the other's token.
 *
 * jose's own `createRemoteJWKSet` is not used for the fetch: once its cache
 * is older than `cacheMaxAge` a failed fetch throws (the last good keys are
 * dropped), its cooldown counts only successful fetches (a JWKS that is down
 * is fetched again on every token) and it reads a response of any size.
 */
import {
  createLocalJWKSet,
  errors,
  importSPKI,
  type JSONWebKeySet,
  type JWK,
  type JWTVerifyGetKey,
} from "jose";
import type { IssuerAlgorithm } from "./issuers.ts";

/** Thrown when an issuer has no key at all to verify with (CONTRACT 8 `key_unavailable`). */
export class KeyUnavailableError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "KeyUnavailableError";
  }
}

/** Limits of a JWKS fetch; the document comes from the network and is hostile input. */
export interface JwksOptions {
  /** At most one fetch per this long (CONTRACT 8: 30 s). */
  cooldownMs?: number;
  /** Good keys older than this are refetched (kept when the fetch fails). */
  maxAgeMs?: number;
  timeoutMs?: number;
  maxBytes?: number;
  /** The current time in epoch ms (tests). */
  now?: () => number;
  /** Told of each failed fetch, for the log (the last good keys stay in use). */
  onError?: (error: unknown) => void;
}

/** The key lookup jose's `jwtVerify` calls with the token's protected header. */
export interface KeySource {
  getKey: JWTVerifyGetKey;
}

/** Keys of the JWK types no asymmetric algorithm uses, or private members. */
const PRIVATE_MEMBERS = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/**
 * Keeps the keys a JWKS document may offer: signing keys (`use` absent or
 * `sig`) whose `alg`, when given, is one the issuer allows, public parts only.
 */
export function usableKeys(json: unknown, algorithms: readonly string[]): JSONWebKeySet {
  const keys = (json as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys)) {
    throw new Error("Cannot use the JWKS as it is not a JSON object with a keys array");
  }
  const usable: JWK[] = [];
  for (const key of keys) {
    if (typeof key !== "object" || key === null || Array.isArray(key)) continue;
    const jwk = key as JWK;
    if (jwk.kty !== "RSA" && jwk.kty !== "EC" && jwk.kty !== "OKP") continue;
    if (jwk.use !== undefined && jwk.use !== "sig") continue;
    if (jwk.alg !== undefined && !algorithms.includes(jwk.alg)) continue;
    const pub: Record<string, unknown> = { ...jwk };
    for (const member of PRIVATE_MEMBERS) delete pub[member];
    usable.push(pub as JWK);
  }
  return { keys: usable };
}

/** Reads at most `maxBytes` of a response body, cancelling it past that. */
async function readCapped(response: Response, maxBytes: number): Promise<string> {
  const declared = Number(response.headers.get("content-length"));
  if (declared > maxBytes) {
    await response.body?.cancel();
    throw new Error(`Cannot read the JWKS as it is larger than ${maxBytes} bytes`);
  }
  const reader = response.body?.getReader();
  if (!reader) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel();
      throw new Error(`Cannot read the JWKS as it is larger than ${maxBytes} bytes`);
    }
    chunks.push(value);
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    all.set(chunk, at);
    at += chunk.byteLength;
  }
  return new TextDecoder().decode(all);
}

/** One issuer's JWKS: cached, refetched at most once per cooldown, last good keys kept. */
export class RemoteKeys implements KeySource {
  readonly url: string;
  readonly #algorithms: readonly string[];
  readonly #cooldownMs: number;
  readonly #maxAgeMs: number;
  readonly #timeoutMs: number;
  readonly #maxBytes: number;
  readonly #now: () => number;
  readonly #onError: (error: unknown) => void;
  #local: JWTVerifyGetKey | null = null;
  #fetchedAt = -Infinity;
  #triedAt = -Infinity;
  #pending: Promise<void> | null = null;
  #lastError: unknown = null;
  /** Fetches started, for tests and the benchmark. */
  fetches = 0;

  constructor(url: string, algorithms: readonly string[], options: JwksOptions = {}) {
    this.url = url;
    this.#algorithms = algorithms;
    this.#cooldownMs = options.cooldownMs ?? 30_000;
    this.#maxAgeMs = options.maxAgeMs ?? 10 * 60_000;
    this.#timeoutMs = options.timeoutMs ?? 5_000;
    this.#maxBytes = options.maxBytes ?? 256 * 1024;
    this.#now = options.now ?? Date.now;
    this.#onError = options.onError ?? (() => {});
  }

  /** Whether a fetch may start now: at most one per cooldown, whatever its outcome. */
  #mayFetch(): boolean {
    return this.#now() >= this.#triedAt + this.#cooldownMs;
  }

  /** Fetches the JWKS once, shared by concurrent callers; a failure keeps the old keys. */
  #refresh(): Promise<void> {
    if (this.#pending) return this.#pending;
    this.#triedAt = this.#now();
    this.fetches++;
    this.#pending = this.#fetch().then((local) => {
      this.#local = local;
      this.#fetchedAt = this.#now();
      this.#lastError = null;
    }, (error) => {
      this.#lastError = error;
      this.#onError(error);
    }).finally(() => {
      this.#pending = null;
    });
    return this.#pending;
  }

  async #fetch(): Promise<JWTVerifyGetKey> {
    // Redirects are never followed: a 3xx is a failure like any other non-200.
    const response = await fetch(this.url, {
      redirect: "manual",
      signal: AbortSignal.timeout(this.#timeoutMs),
      headers: { accept: "application/json, application/jwk-set+json" },
    });
    if (response.status !== 200) {
      await response.body?.cancel();
      throw new Error(
        `Cannot use the JWKS as it answered ${response.status}: current status is not 200`,
      );
    }
    const json = JSON.parse(await readCapped(response, this.#maxBytes));
    return createLocalJWKSet(usableKeys(json, this.#algorithms));
  }

  getKey: JWTVerifyGetKey = async (header, token) => {
    const stale = this.#now() >= this.#fetchedAt + this.#maxAgeMs;
    if ((this.#local === null || stale) && this.#mayFetch()) await this.#refresh();
    else if (this.#pending) await this.#pending;
    const local = this.#local;
    if (local === null) {
      throw new KeyUnavailableError(`no key could be fetched from ${this.url}`, {
        cause: this.#lastError,
      });
    }
    try {
      return await local(header, token);
    } catch (error) {
      // A kid it lacks: perhaps a key rotated in since; ask once per cooldown.
      if (!(error instanceof errors.JWKSNoMatchingKey) || !this.#mayFetch()) throw error;
      await this.#refresh();
      return await this.#local!(header, token);
    }
  };
}

/** A configured PEM key, imported once per algorithm it may verify. */
export class StaticKey implements KeySource {
  readonly #keys: Map<string, CryptoKey>;

  private constructor(keys: Map<string, CryptoKey>) {
    this.#keys = keys;
  }

  /** Imports the PEM for each algorithm (checked to suit the key at start-up). */
  static async create(pem: string, algorithms: readonly IssuerAlgorithm[]): Promise<StaticKey> {
    const keys = new Map<string, CryptoKey>();
    for (const alg of algorithms) keys.set(alg, await importSPKI(pem, alg));
    return new StaticKey(keys);
  }

  getKey: JWTVerifyGetKey = (header) => {
    const key = this.#keys.get(header.alg ?? "");
    if (!key) {
      throw new errors.JOSEAlgNotAllowed(`"alg" (Algorithm) Header Parameter value not allowed`);
    }
    return key;
  };
}
