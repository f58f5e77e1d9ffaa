import assert from "node:assert/strict";
import { eventually, freePort, rawUpgrade, startTestServer, TestClient } from "./helpers.ts";
import { issuerEntry, makeKey, serveJwks, signIdp } from "./idp_fixtures.ts";

const IDP = "https://idp.test/realms/acme";

for (const alg of ["RS256", "ES256", "EdDSA"] as const) {
  Deno.test(`/admin/ws accepts an identity provider's ${alg} token, by message and by header`, async () => {
    const signing = await makeKey(alg, `kid-${alg}`);
    await using jwks = serveJwks([signing]);
    await using server = await startTestServer({
      JWT_ISSUERS: JSON.stringify([issuerEntry(IDP, jwks.url, { algorithms: [alg] })]),
    });
    const token = await signIdp(signing, IDP, { sub: "ida", role: "viewer", jti: undefined });
    const client = await TestClient.open(server.wsUrl);
    const authed = await client.auth(token);
    assert.deepEqual(authed.user, { name: "ida", role: "viewer" });
    await client.close();

    const byHeader = await TestClient.open(server.wsUrl, {
      headers: { authorization: `Bearer ${token}` },
    });
    const first = await byHeader.next("authenticated");
    assert.equal(first.user.name, "ida");
    await byHeader.close();

    const rows = await eventually(async () => {
      const all = await server.attempts();
      return all.length >= 2 ? all : null;
    });
    assert.deepEqual(
      rows!.map((r) => [r.transport, r.reason, r.user, r.tokenId]).sort(),
      [["header", "ok", "ida", null], ["message", "ok", "ida", null]],
    );
    assert.equal(jwks.fetches, 1);
  });
}

Deno.test("key_unavailable: 1013 after the first message, 503 before the upgrade, both recorded", async () => {
  const signing = await makeKey("RS256", "k");
  const down = `http://127.0.0.1:${freePort()}/jwks.json`;
  await using server = await startTestServer({
    JWT_ISSUERS: JSON.stringify([issuerEntry(IDP, down)]),
  });
  const token = await signIdp(signing, IDP, { sub: "ida" });

  const client = await TestClient.open(server.wsUrl);
  client.send({ type: "auth", token });
  const failed = await client.next("auth_failed");
  assert.equal(failed.reason, "key_unavailable");
  assert.deepEqual(await client.closed, { code: 1013, reason: "key_unavailable" });

  const res = await rawUpgrade(server.wsUrl, { authorization: `Bearer ${token}` });
  assert.equal(res.status, 503);
  assert.equal(JSON.parse(res.body).reason, "key_unavailable");
  assert.ok(res.headers.get("retry-after"));
  assert.doesNotMatch(res.body, new RegExp(token.split(".")[2]));

  const rows = await eventually(async () => {
    const all = await server.attempts();
    return all.length >= 2 ? all : null;
  });
  assert.deepEqual(
    rows!.map((r) => [r.transport, r.outcome, r.reason]).sort(),
    [["header", "failure", "key_unavailable"], ["message", "failure", "key_unavailable"]],
  );
  // The operator is told why, naming the issuer; the token is never logged.
  const warned = server.logs.filter((l) => l.includes("cannot fetch the JWKS"));
  assert.ok(warned.length >= 1, server.logs.join("\n"));
  assert.match(warned[0], /"level":"warn".*"issuer":"https:\/\/idp\.test\/realms\/acme"/);
  assert.ok(server.logs.every((l) => !l.includes(token.split(".")[2])));
  // The attempt log can be filtered by the new reason.
  const res2 = await fetch(new URL("/api/v1/attempts?reason=key_unavailable", server.url), {
    headers: { authorization: `Bearer ${await server.mint()}` },
  });
  assert.equal(res2.status, 200);
  const body = await res2.json();
  assert.equal(body.items.length, 2);
  assert.ok(body.items.every((a: { reason: string }) => a.reason === "key_unavailable"));
});

Deno.test("an identity provider being down does not rate-limit its users' addresses", async () => {
  const signing = await makeKey("ES256", "k");
  const down = `http://127.0.0.1:${freePort()}/jwks.json`;
  await using server = await startTestServer({
    JWT_ISSUERS: JSON.stringify([issuerEntry(IDP, down)]),
  }, { limits: { wsFailuresPerIp: 2 } });
  const token = await signIdp(signing, IDP);
  for (let i = 0; i < 4; i++) {
    const res = await rawUpgrade(server.wsUrl, { authorization: `Bearer ${token}` });
    assert.equal(res.status, 503, `attempt ${i}`);
  }
});

Deno.test("Keycloak and Auth0 shaped tokens get their mapped roles over the socket", async () => {
  const kc = await makeKey("RS256", "kc-1");
  const a0 = await makeKey("RS256", "kc-1"); // the same kid, another issuer
  await using kcJwks = serveJwks([kc]);
  await using a0Jwks = serveJwks([a0]);
  const claim = "https://lookout.example.com/roles";
  await using server = await startTestServer({
    JWT_ISSUERS: JSON.stringify([
      issuerEntry(IDP, kcJwks.url, {
        algorithms: ["RS256"],
        roleClaim: "realm_access.roles",
        roles: { admin: ["lookout-admin"], viewer: ["lookout-viewer"] },
        userClaim: "preferred_username",
      }),
      issuerEntry("https://acme.eu.auth0.com/", a0Jwks.url, {
        algorithms: ["RS256"],
        roleClaim: claim,
      }),
    ]),
  });
  const kate = await signIdp(kc, IDP, {
    preferred_username: "kate",
    role: undefined,
    realm_access: { roles: ["default-roles-acme", "lookout-admin"] },
  });
  const client = await TestClient.open(server.wsUrl);
  assert.deepEqual((await client.auth(kate)).user, { name: "kate", role: "admin" });
  await client.close();

  const zed = await signIdp(a0, "https://acme.eu.auth0.com/", {
    sub: "auth0|zed",
    role: undefined,
    [claim]: ["viewer"],
  });
  const second = await TestClient.open(server.wsUrl);
  assert.deepEqual((await second.auth(zed)).user, { name: "auth0|zed", role: "viewer" });
  await second.close();

  // Auth0's key under Keycloak's iss: the shared kid finds only Keycloak's key.
  const confused = await signIdp(a0, IDP, {
    preferred_username: "kate",
    realm_access: { roles: ["lookout-admin"] },
  });
  const third = await TestClient.open(server.wsUrl);
  third.send({ type: "auth", token: confused });
  assert.equal((await third.next("auth_failed")).reason, "invalid_signature");
  assert.deepEqual(await third.closed, { code: 4401, reason: "invalid_signature" });

  const noRole = await signIdp(kc, IDP, {
    preferred_username: "kate",
    realm_access: { roles: [] },
  });
  const fourth = await TestClient.open(server.wsUrl);
  fourth.send({ type: "auth", token: noRole });
  assert.equal((await fourth.next("auth_failed")).reason, "forbidden");
  assert.deepEqual(await fourth.closed, { code: 4403, reason: "forbidden" });
});

Deno.test("an identity provider's user can re-authenticate, and another user cannot", async () => {
  const signing = await makeKey("EdDSA", "ed");
  await using jwks = serveJwks([signing]);
  await using server = await startTestServer({
    JWT_ISSUERS: JSON.stringify([issuerEntry(IDP, jwks.url)]),
  });
  const client = await TestClient.open(server.wsUrl);
  await client.auth(await signIdp(signing, IDP, { sub: "ida" }));
  client.send({ type: "auth", token: await signIdp(signing, IDP, { sub: "ida", jti: "t2" }) });
  await client.next("reauthenticated");
  client.send({ type: "auth", token: await signIdp(signing, IDP, { sub: "other" }) });
  assert.deepEqual(await client.closed, { code: 4401, reason: "invalid_claims" });
});

Deno.test("the HTTP API answers 503 key_unavailable, not 401, for a provider's token without keys", async () => {
  const signing = await makeKey("ES256", "k");
  const down = `http://127.0.0.1:${freePort()}/jwks.json`;
  await using server = await startTestServer({
    JWT_ISSUERS: JSON.stringify([issuerEntry(IDP, down)]),
  });
  const token = await signIdp(signing, IDP);
  for (const path of ["/api/v1/stats", "/api/v1/metrics"]) {
    const res = await fetch(new URL(path, server.url), {
      headers: { authorization: `Bearer ${token}` },
    });
    const body = await res.json();
    assert.equal(res.status, 503, path);
    assert.equal(body.reason, "key_unavailable", path);
    assert.equal(res.headers.get("retry-after"), "30");
  }
});

Deno.test("revoking a user closes their provider sockets and refuses their older provider tokens", async () => {
  const signing = await makeKey("RS256", "k");
  await using jwks = serveJwks([signing]);
  await using server = await startTestServer({
    JWT_ISSUERS: JSON.stringify([issuerEntry(IDP, jwks.url, { userClaim: "email" })]),
  });
  const iat = Math.floor(Date.now() / 1000) - 5;
  const token = await signIdp(signing, IDP, { email: "ida@example.com", iat, jti: undefined });
  const live = await TestClient.open(server.wsUrl);
  await live.auth(token);
  await server.deps.revocations.revokeUser("ida@example.com");
  assert.deepEqual(await live.closed, { code: 4403, reason: "revoked" });
  const again = await TestClient.open(server.wsUrl);
  again.send({ type: "auth", token });
  assert.equal((await again.next("auth_failed")).reason, "revoked");
  assert.deepEqual(await again.closed, { code: 4403, reason: "revoked" });
});
