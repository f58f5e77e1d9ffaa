/** A stored password hash: PBKDF2-HMAC-SHA256 with a salt of its own. */
export interface PasswordHash {
  alg: "pbkdf2-sha256";
  iterations: number;
  /** base64 */
  salt: string;
  /** base64 */
  hash: string;
}

/** OWASP's 2023 figure for PBKDF2-HMAC-SHA256. */
export const PBKDF2_ITERATIONS = 600_000;
/** Longest password accepted; longer is refused before any hashing. */
export const MAX_PASSWORD_CHARS = 1024;

const encoder = new TextEncoder();

async function derive(
  password: string,
  salt: Uint8Array,
  iterations: number,
): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey(
    "raw",
    encoder.encode(password),
    "PBKDF2",
    false,
    ["deriveBits"],
  );
  const bits = await crypto.subtle.deriveBits(
    { name: "PBKDF2", hash: "SHA-256", salt: salt as BufferSource, iterations },
    key,
    256,
  );
  return new Uint8Array(bits);
}

/** Hashes a password with a fresh 16-byte salt. */
export async function hashPassword(password: string): Promise<PasswordHash> {
  if (password.length > MAX_PASSWORD_CHARS) {
    throw new RangeError(
      `Cannot hash the password as it is too long: ${password.length} characters, at most ${MAX_PASSWORD_CHARS}`,
    );
  }
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const hash = await derive(password, salt, PBKDF2_ITERATIONS);
  return {
    alg: "pbkdf2-sha256",
    iterations: PBKDF2_ITERATIONS,
    salt: salt.toBase64(),
    hash: hash.toBase64(),
  };
}

/** Compares two byte strings in time that depends only on their length. */
export function timingSafeEqual(a: Uint8Array, b: Uint8Array): boolean {
  let diff = a.length ^ b.length;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ (b[i % b.length] ?? 0);
  return diff === 0;
}

/**
 * A hash that no password matches, checked when the user does not exist, so
 * an unknown name costs the same time as a wrong password.
 */
const DUMMY: PasswordHash = {
  alg: "pbkdf2-sha256",
  iterations: PBKDF2_ITERATIONS,
  salt: new Uint8Array(16).toBase64(),
  hash: new Uint8Array(32).toBase64(),
};

/** Checks `password` against `stored` (or a dummy hash when there is none). */
export async function verifyPassword(
  password: string,
  stored: PasswordHash | null,
): Promise<boolean> {
  const target = stored ?? DUMMY;
  const derived = await derive(password, Uint8Array.fromBase64(target.salt), target.iterations);
  return timingSafeEqual(derived, Uint8Array.fromBase64(target.hash)) && stored !== null;
}
