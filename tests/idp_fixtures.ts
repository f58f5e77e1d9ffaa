/**
 * A tiny identity provider for tests: key pairs made with WebCrypto, a JWKS
 * served by a real server on a free loopback port that counts its fetches
 * and can be taken down or rotated, and tokens signed with jose.
 */
import { exportJWK, exportSPKI, type JWK, SignJWT } from "jose";

/** An asymmetric algorithm the tests sign with. */
export type TestAlg = "RS256" | "ES256" | "EdDSA";

/** A signing key pair and its public JWK. */
export interface TestKey {
  alg: TestAlg;
  kid: string;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  jwk: JWK;
}

const PARAMS: Record<TestAlg, RsaHashedKeyGenParams | EcKeyGenParams | { name: "Ed25519" }> = {
  RS256: {
    name: "RSASSA-PKCS1-v1_5",
    modulusLength: 2048,
    publicExponent: new Uint8Array([1, 0, 1]),
    hash: "SHA-256",
  },
  ES256: { name: "ECDSA", namedCurve: "P-256" },
  EdDSA: { name: "Ed25519" },
};

/** Makes a key pair for `alg` with WebCrypto. */
export async function makeKey(alg: TestAlg, kid: string): Promise<TestKey> {
  const pair = await crypto.subtle.generateKey(PARAMS[alg], true, [
    "sign",
    "verify",
  ]) as CryptoKeyPair;
  const jwk = { ...await exportJWK(pair.publicKey), kid, alg, use: "sig" };
  return { alg, kid, privateKey: pair.privateKey, publicKey: pair.publicKey, jwk };
}

/** The public key as PEM (SPKI), for a `publicKey` issuer. */
export function pem(key: TestKey): Promise<string> {
  return exportSPKI(key.publicKey);
}

/** A JWKS served on a free loopback port. */
export interface JwksServer extends AsyncDisposable {
  url: string;
  /** GETs of the JWKS so far. */
  fetches: number;
  /** The document served; change it to rotate. */
  jwks: { keys: JWK[] };
  /** Answer 500 while true (the JWKS is down). */
  down: boolean;
  /** A raw body served instead of the JWKS, and an optional status. */
  override: { status: number; body: string; headers?: Record<string, string> } | null;
  close(): Promise<void>;
}

/** Serves `keys` as a JWKS at `http://127.0.0.1:<port>/jwks.json`. */
export function serveJwks(keys: TestKey[]): JwksServer {
  const state = {
    fetches: 0,
    jwks: { keys: keys.map((k) => k.jwk) },
    down: false,
    override: null as JwksServer["override"],
  };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => {
    state.fetches++;
    if (state.down) return new Response("down", { status: 500 });
    if (state.override) {
      return new Response(state.override.body, {
        status: state.override.status,
        headers: state.override.headers,
      });
    }
    return Response.json(state.jwks);
  });
  const close = () => server.shutdown();
  return Object.assign(state, {
    url: `http://127.0.0.1:${server.addr.port}/jwks.json`,
    close,
    [Symbol.asyncDispose]: close,
  }) as unknown as JwksServer;
}

/** Signs a token with `key` for `iss`, with `claims` over standard ones (undefined deletes). */
export async function signIdp(
  key: TestKey,
  iss: string,
  claims: Record<string, unknown> = {},
  header: Record<string, unknown> = {},
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const payload: Record<string, unknown> = {
    iss,
    aud: "lookout-api",
    sub: "user-1",
    role: "admin",
    iat: now,
    exp: now + 600,
    ...claims,
  };
  for (const [name, value] of Object.entries(payload)) {
    if (value === undefined) delete payload[name];
  }
  return await new SignJWT(payload)
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: "JWT", ...header })
    .sign(key.privateKey);
}

/** A `JWT_ISSUERS` entry for a JWKS on a test server. */
export function issuerEntry(
  issuer: string,
  jwksUrl: string,
  more: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    issuer,
    audience: "lookout-api",
    jwksUrl,
    algorithms: ["RS256", "ES256", "EdDSA"],
    ...more,
  };
}
