import assert from "node:assert/strict";
import { SignJWT } from "jose";
import { loadConfig } from "../lib/config.ts";
import { RemoteKeys } from "../lib/auth/jwks.ts";
import { type TokenKey, tokenKey, verifyAccessToken } from "../lib/auth/tokens.ts";
import { freePort } from "./helpers.ts";
import {
  issuerEntry,
  type JwksServer,
  makeKey,
  pem,
  serveJwks,
  signIdp,
  type TestKey,
} from "./idp_fixtures.ts";

const OWN_SECRET = "s".repeat(32);

/** A token key for Lookout with `issuers` as JWT_ISSUERS would give them. */
async function keyWith(
  issuers: Record<string, unknown>[],
  previous?: string,
): Promise<TokenKey> {
  const config = loadConfig({ JWT_ISSUERS: JSON.stringify(issuers) });
  return await tokenKey(OWN_SECRET, config.jwtIssuer, config.jwtAudience, {
    previous,
    issuers: config.jwtIssuers,
  });
}

function remote(key: TokenKey, iss: string): RemoteKeys {
  const keys = key.issuers!.get(iss)!.keys;
  assert.ok(keys instanceof RemoteKeys);
  return keys;
}

const IDP = "https://idp.test/";

for (const alg of ["RS256", "ES256", "EdDSA"] as const) {
  Deno.test(`issuer token signed with ${alg} verifies through a real JWKS`, async () => {
    const signing = await makeKey(alg, `k-${alg}`);
    await using jwks = serveJwks([signing]);
    const key = await keyWith([issuerEntry(IDP, jwks.url, { algorithms: [alg] })]);
    const result = await verifyAccessToken(key, await signIdp(signing, IDP, { sub: "ana" }));
    assert.deepEqual(result.ok && result.claims.sub, "ana");
    assert.equal(result.ok && result.claims.role, "admin");
    assert.equal(jwks.fetches, 1);
  });
}

Deno.test("the JWKS is fetched once for many tokens; an unknown kid refetches at most once per 30 s", async () => {
  const signing = await makeKey("ES256", "a");
  const stranger = await makeKey("ES256", "never-published");
  await using jwks = serveJwks([signing]);
  let now = Date.now();
  const keys = new RemoteKeys(jwks.url, ["ES256"], { now: () => now });
  const key = await keyWith([issuerEntry(IDP, jwks.url)]);
  key.issuers!.get(IDP)!.keys = keys;
  const good = await signIdp(signing, IDP);
  const results = await Promise.all(
    Array.from({ length: 20 }, () => verifyAccessToken(key, good)),
  );
  assert.ok(results.every((r) => r.ok));
  assert.equal(jwks.fetches, 1, "concurrent tokens share one fetch");

  const unknown = await signIdp(stranger, IDP);
  now += 30_001;
  for (let i = 0; i < 10; i++) {
    const result = await verifyAccessToken(key, unknown);
    assert.equal(result.ok ? "ok" : result.reason, "invalid_signature");
  }
  assert.equal(jwks.fetches, 2, "ten tokens with an unknown kid caused one refetch");
  now += 29_000;
  await verifyAccessToken(key, unknown);
  assert.equal(jwks.fetches, 2, "still within 30 s of the last fetch");
  now += 1_001;
  await verifyAccessToken(key, unknown);
  assert.equal(jwks.fetches, 3, "30 s later one more refetch is allowed");
});

Deno.test("rotation: a token with a new kid verifies once the JWKS lists it", async () => {
  const old = await makeKey("RS256", "2026-01");
  const next = await makeKey("RS256", "2026-02");
  await using jwks = serveJwks([old]);
  let now = Date.now();
  const keys = new RemoteKeys(jwks.url, ["RS256"], { now: () => now });
  const key = await keyWith([issuerEntry(IDP, jwks.url)]);
  key.issuers!.get(IDP)!.keys = keys;
  assert.ok((await verifyAccessToken(key, await signIdp(old, IDP))).ok);
  jwks.jwks = { keys: [old.jwk, next.jwk] };
  now += 30_000;
  const result = await verifyAccessToken(key, await signIdp(next, IDP));
  assert.ok(result.ok, JSON.stringify(result));
  assert.equal(jwks.fetches, 2);
  assert.ok((await verifyAccessToken(key, await signIdp(old, IDP))).ok, "old key still listed");
});

Deno.test("the JWKS going down keeps the last good keys; no key at all is key_unavailable", async () => {
  const signing = await makeKey("EdDSA", "ed");
  await using jwks = serveJwks([signing]);
  let now = Date.now();
  const keys = new RemoteKeys(jwks.url, ["EdDSA"], { now: () => now });
  const key = await keyWith([issuerEntry(IDP, jwks.url)]);
  key.issuers!.get(IDP)!.keys = keys;
  const token = await signIdp(signing, IDP);
  assert.ok((await verifyAccessToken(key, token)).ok);
  jwks.down = true;
  now += 11 * 60_000; // past the cache's max age: it refetches, and fails
  const again = await verifyAccessToken(key, token, { now: Date.now() });
  assert.ok(again.ok, JSON.stringify(again));
  assert.equal(jwks.fetches, 2, "the stale cache did try to refetch");

  // A fresh instance with the JWKS down has nothing to verify with.
  const fresh = await keyWith([issuerEntry(IDP, jwks.url)]);
  const none = await verifyAccessToken(fresh, token);
  assert.equal(none.ok ? "ok" : none.reason, "key_unavailable");
  // And it does not hammer the provider: the next token within 30 s fetches nothing.
  await verifyAccessToken(fresh, token);
  assert.equal(jwks.fetches, 3);
});

Deno.test("key_unavailable when nothing listens, answers are not 200, too large, slow or redirect", async () => {
  const signing = await makeKey("RS256", "r");
  const token = await signIdp(signing, IDP);
  const closed = `http://127.0.0.1:${freePort()}/jwks.json`;
  const nothing = await verifyAccessToken(await keyWith([issuerEntry(IDP, closed)]), token);
  assert.equal(nothing.ok ? "ok" : nothing.reason, "key_unavailable");

  await using jwks = serveJwks([signing]);
  const overrides: JwksServer["override"][] = [
    { status: 404, body: "{}" },
    { status: 302, body: "", headers: { location: jwks.url.replace("jwks", "other") } },
    { status: 200, body: JSON.stringify({ keys: [signing.jwk], pad: "x".repeat(300 * 1024) }) },
    { status: 200, body: "not json" },
    { status: 200, body: JSON.stringify({ keys: "none" }) },
  ];
  for (const override of overrides) {
    jwks.override = override;
    const result = await verifyAccessToken(await keyWith([issuerEntry(IDP, jwks.url)]), token);
    assert.equal(
      result.ok ? "ok" : result.reason,
      "key_unavailable",
      JSON.stringify(override).slice(0, 90),
    );
  }
});

Deno.test("a slow JWKS times out as key_unavailable", async () => {
  const signing = await makeKey("RS256", "r");
  const stall = Promise.withResolvers<void>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async () => {
    await stall.promise;
    return new Response("{}");
  });
  try {
    const keys = new RemoteKeys(`http://127.0.0.1:${server.addr.port}/`, ["RS256"], {
      timeoutMs: 200,
    });
    const key = await keyWith([issuerEntry(IDP, `http://127.0.0.1:${server.addr.port}/`)]);
    key.issuers!.get(IDP)!.keys = keys;
    const started = performance.now();
    const result = await verifyAccessToken(key, await signIdp(signing, IDP));
    assert.equal(result.ok ? "ok" : result.reason, "key_unavailable");
    assert.ok(performance.now() - started < 3000);
  } finally {
    stall.resolve();
    await server.shutdown();
  }
});

Deno.test("keys for encryption, of another alg, symmetric, or private parts are never used", async () => {
  const signing = await makeKey("RS256", "r");
  const token = await signIdp(signing, IDP);
  await using jwks = serveJwks([signing]);
  for (
    const jwk of [
      { ...signing.jwk, use: "enc" },
      { ...signing.jwk, alg: "RS512" },
      { kty: "oct", kid: "r", k: "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0", alg: "HS256" },
    ]
  ) {
    jwks.jwks = { keys: [jwk] };
    const result = await verifyAccessToken(
      await keyWith([issuerEntry(IDP, jwks.url, { algorithms: ["RS256"] })]),
      token,
    );
    assert.equal(result.ok ? "ok" : result.reason, "invalid_signature", JSON.stringify(jwk));
  }
});

Deno.test("two issuers sharing a kid never verify each other's tokens (no shared cache)", async () => {
  const a = await makeKey("ES256", "shared-kid");
  const b = await makeKey("ES256", "shared-kid");
  await using jwksA = serveJwks([a]);
  await using jwksB = serveJwks([b]);
  const key = await keyWith([
    issuerEntry("https://a.test/", jwksA.url),
    issuerEntry("https://b.test/", jwksB.url),
  ]);
  assert.notEqual(remote(key, "https://a.test/"), remote(key, "https://b.test/"));
  // Both caches warm, each with its own "shared-kid".
  assert.ok((await verifyAccessToken(key, await signIdp(a, "https://a.test/"))).ok);
  assert.ok((await verifyAccessToken(key, await signIdp(b, "https://b.test/"))).ok);
  // B's key, B's kid, A's iss: only A's keys are tried.
  const confused = await verifyAccessToken(key, await signIdp(b, "https://a.test/"));
  assert.equal(confused.ok ? "ok" : confused.reason, "invalid_signature");
  assert.equal(confused.ok ? "" : confused.user, null);
  assert.equal(jwksA.fetches, 1);
  assert.equal(jwksB.fetches, 1);
});

Deno.test("jku, x5u, jwk and x5c headers are never used to find a key", async () => {
  const real = await makeKey("RS256", "real");
  const attacker = await makeKey("RS256", "real");
  await using jwks = serveJwks([real]);
  await using evil = serveJwks([attacker]);
  const key = await keyWith([issuerEntry(IDP, jwks.url)]);
  const forged = await signIdp(attacker, IDP, {}, {
    jku: evil.url,
    x5u: evil.url,
    jwk: { kty: attacker.jwk.kty, n: attacker.jwk.n, e: attacker.jwk.e },
  });
  const result = await verifyAccessToken(key, forged);
  assert.equal(result.ok ? "ok" : result.reason, "invalid_signature");
  assert.equal(evil.fetches, 0);
});

Deno.test("algorithm confusion: HS256 with an issuer's iss, RS256 with Lookout's own", async () => {
  const signing = await makeKey("RS256", "r");
  await using jwks = serveJwks([signing]);
  const key = await keyWith([issuerEntry(IDP, jwks.url, { algorithms: ["RS256"] })]);
  const now = Math.floor(Date.now() / 1000);
  const claims = { sub: "eve", role: "admin", aud: "lookout-api", iat: now, exp: now + 600 };
  // HMAC keyed with what an attacker can see: the issuer's public JWKS text.
  const hs = await new SignJWT({ ...claims, iss: IDP })
    .setProtectedHeader({ alg: "HS256", kid: "r" })
    .sign(new TextEncoder().encode(JSON.stringify(jwks.jwks)));
  const hsResult = await verifyAccessToken(key, hs);
  assert.equal(hsResult.ok ? "ok" : hsResult.reason, "alg_not_allowed");
  // HS256 with Lookout's own secret but an issuer's iss: still only RS256 there.
  const own = await new SignJWT({ ...claims, iss: IDP })
    .setProtectedHeader({ alg: "HS256" })
    .sign(new TextEncoder().encode(OWN_SECRET));
  const ownResult = await verifyAccessToken(key, own);
  assert.equal(ownResult.ok ? "ok" : ownResult.reason, "alg_not_allowed");
  // ES256 key (allowed for nobody here) with the issuer's iss.
  const es = await signIdp(await makeKey("ES256", "r"), IDP);
  const esResult = await verifyAccessToken(key, es);
  assert.equal(esResult.ok ? "ok" : esResult.reason, "alg_not_allowed");
  // RS256 with Lookout's own iss and aud: Lookout's own tokens are HS256 only.
  const rs = await signIdp(signing, "lookout", { aud: "lookout" });
  const rsResult = await verifyAccessToken(key, rs);
  assert.equal(rsResult.ok ? "ok" : rsResult.reason, "alg_not_allowed");
});

Deno.test("an iss that is neither Lookout's nor configured is invalid_claims", async () => {
  const signing = await makeKey("RS256", "r");
  await using jwks = serveJwks([signing]);
  const key = await keyWith([issuerEntry(IDP, jwks.url)]);
  const result = await verifyAccessToken(key, await signIdp(signing, "https://other.test/"));
  assert.equal(result.ok ? "ok" : result.reason, "invalid_claims");
  assert.equal(jwks.fetches, 0);
});

Deno.test("Keycloak roles: realm_access.roles mapped by roles, admin wins", async () => {
  const signing = await makeKey("RS256", "kc");
  await using jwks = serveJwks([signing]);
  const key = await keyWith([issuerEntry(IDP, jwks.url, {
    roleClaim: "realm_access.roles",
    roles: { admin: ["lookout-admin"], viewer: ["lookout-viewer"] },
    userClaim: "preferred_username",
  })]);
  const token = (roles: unknown) =>
    signIdp(signing, IDP, {
      sub: "f81d4fae-7dec",
      preferred_username: "kate",
      role: undefined,
      realm_access: { roles },
      jti: undefined,
    });
  const viewer = await verifyAccessToken(key, await token(["offline_access", "lookout-viewer"]));
  assert.deepEqual(viewer.ok && viewer.claims, {
    sub: "kate",
    role: "viewer",
    jti: null,
    sid: null,
    iat: viewer.ok ? viewer.claims.iat : 0,
    exp: viewer.ok ? viewer.claims.exp : 0,
  });
  const both = await verifyAccessToken(key, await token(["lookout-viewer", "lookout-admin"]));
  assert.equal(both.ok && both.claims.role, "admin");
  const none = await verifyAccessToken(key, await token(["offline_access", "admin"]));
  assert.equal(none.ok ? "ok" : none.reason, "forbidden");
  assert.equal(none.ok ? "" : none.user, "kate");
  const missingUser = await verifyAccessToken(
    key,
    await signIdp(signing, IDP, { realm_access: { roles: ["lookout-admin"] } }),
  );
  assert.equal(missingUser.ok ? "ok" : missingUser.reason, "invalid_claims");
});

Deno.test("Auth0 roles: a namespaced claim holding an array", async () => {
  const signing = await makeKey("RS256", "auth0");
  await using jwks = serveJwks([signing]);
  const claim = "https://lookout.example.com/roles";
  const key = await keyWith([issuerEntry(IDP, jwks.url, { roleClaim: claim })]);
  const ok = await verifyAccessToken(
    key,
    await signIdp(signing, IDP, { sub: "auth0|5f7c8ec7", role: undefined, [claim]: ["viewer"] }),
  );
  assert.equal(ok.ok && ok.claims.role, "viewer");
  assert.equal(ok.ok && ok.claims.sub, "auth0|5f7c8ec7");
  const other = await verifyAccessToken(
    key,
    await signIdp(signing, IDP, { role: undefined, [claim]: "owner" }),
  );
  assert.equal(other.ok ? "ok" : other.reason, "forbidden");
});

Deno.test("issuer tokens: exp and iat required, expired, audience, revocation", async () => {
  const signing = await makeKey("ES256", "e");
  await using jwks = serveJwks([signing]);
  const key = await keyWith([issuerEntry(IDP, jwks.url)]);
  const now = Math.floor(Date.now() / 1000);
  const reason = async (claims: Record<string, unknown>, isRevoked?: () => boolean) => {
    const r = await verifyAccessToken(key, await signIdp(signing, IDP, claims), { isRevoked });
    return r.ok ? "ok" : r.reason;
  };
  assert.equal(await reason({ exp: undefined }), "invalid_claims");
  assert.equal(await reason({ iat: undefined }), "invalid_claims");
  assert.equal(await reason({ exp: now - 10 }), "token_expired");
  assert.equal(await reason({ iat: now + 600, exp: now + 900 }), "token_not_yet_valid");
  assert.equal(await reason({ aud: "someone-else" }), "invalid_claims");
  assert.equal(await reason({}, () => true), "revoked");
  assert.equal(await reason({}), "ok");
});

Deno.test("a PEM publicKey issuer verifies its tokens, only with its algorithms", async () => {
  const signing = await makeKey("EdDSA", "pem");
  const key = await keyWith([{
    issuer: IDP,
    audience: ["lookout-api", "other"],
    publicKey: await pem(signing),
    algorithms: ["EdDSA"],
  }]);
  assert.ok((await verifyAccessToken(key, await signIdp(signing, IDP))).ok);
  const other: TestKey = await makeKey("EdDSA", "pem");
  const bad = await verifyAccessToken(key, await signIdp(other, IDP));
  assert.equal(bad.ok ? "ok" : bad.reason, "invalid_signature");
});

Deno.test("JWT_SECRET_PREVIOUS: tokens of the retired secret still verify, others do not", async () => {
  const previous = "p".repeat(32);
  const withPrevious = await keyWith([], previous);
  const without = await keyWith([]);
  const old = await tokenKey(previous, "lookout", "lookout");
  const { signAccessToken } = await import("../lib/auth/tokens.ts");
  const { token } = await signAccessToken(old, { sub: "al", role: "viewer", ttlS: 600 });
  const result = await verifyAccessToken(withPrevious, token);
  assert.equal(result.ok && result.claims.sub, "al");
  const refused = await verifyAccessToken(without, token);
  assert.equal(refused.ok ? "ok" : refused.reason, "invalid_signature");
  const stranger = await tokenKey("x".repeat(32), "lookout", "lookout");
  const { token: foreign } = await signAccessToken(stranger, {
    sub: "al",
    role: "viewer",
    ttlS: 60,
  });
  const foreignResult = await verifyAccessToken(withPrevious, foreign);
  assert.equal(foreignResult.ok ? "ok" : foreignResult.reason, "invalid_signature");
});
