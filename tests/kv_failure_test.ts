/** KV unavailable: Lookout fails closed (503, 1011) and recovers when KV returns. */
import assert from "node:assert/strict";
import { putUser } from "../lib/auth/users.ts";
import {
  login,
  randomPassword,
  rawUpgrade,
  startTestServer,
  switchableKv,
  TestClient,
} from "./helpers.ts";

Deno.test("Lookout fails closed while KV is down (503, 1011, nobody authenticated) and recovers when it returns", async () => {
  const real = await Deno.openKv(":memory:");
  const store = switchableKv(real);
  const server = await startTestServer({}, { kv: store.kv });
  try {
    const password = randomPassword();
    await putUser(real, { name: "ada", role: "admin", password });
    const token = await server.mint();
    const healthz = () => fetch(new URL("/healthz", server.url));

    store.down = true;
    const health = await healthz();
    assert.equal(health.status, 503);
    assert.equal((await health.json()).status, "unavailable");

    const refused = await login(server.url, "ada", password);
    assert.equal(refused.res.status, 503);
    assert.equal(refused.body.error, "unavailable");
    assert.equal(refused.res.headers.get("set-cookie"), null);

    const api = await fetch(new URL("/api/v1/attempts", server.url), {
      headers: { Authorization: `Bearer ${token}` },
    });
    assert.equal(api.status, 503);
    await api.body?.cancel();

    const client = await TestClient.open(server.wsUrl);
    client.send({ type: "auth", token });
    const closed = await client.closed;
    assert.equal(closed.code, 1011);
    assert.deepEqual(client.received, [], "no authenticated without a record");
    const upgrade = await rawUpgrade(server.wsUrl, { Origin: "https://evil.example" });
    assert.equal(upgrade.status, 503, "a refusal that cannot be recorded");
    assert.ok(
      server.logs.some((line) => line.includes("store unavailable")),
      "the outage is logged",
    );

    store.down = false;
    assert.equal((await healthz()).status, 200);
    const back = await login(server.url, "ada", password);
    assert.equal(back.res.status, 200);
    const again = await TestClient.open(server.wsUrl);
    await again.auth(back.token);
    await again.next("stats_update");
    await again.close();
    const [attempt] = await server.attempts(1);
    assert.equal(attempt.outcome, "success");
  } finally {
    store.down = false;
    await server.close();
    real.close();
  }
});
