/**
 * KV is the one route between instances (docs/protocol.md section 7). Two
 * separate `main.ts` processes on one KV file are the closest local stand-in
 * for Deno Deploy isolates: no shared memory, no BroadcastChannel, and no
 * kv.watch wake-ups from each other's commits (only the poll).
 */
import assert from "node:assert/strict";
import type { ServerMessage } from "../shared/protocol.ts";
import { signAccessToken, tokenKey } from "../lib/auth/tokens.ts";
import {
  eventually,
  failAuth,
  login,
  randomPassword,
  randomSecret,
  startProcess,
  TestClient,
} from "./helpers.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `what`'s value, and how long it took from now. */
async function timed<T>(what: Promise<T>): Promise<{ value: T; ms: number }> {
  const started = performance.now();
  const value = await what;
  return { value, ms: performance.now() - started };
}

for (const workers of ["1", "2"]) {
  Deno.test({
    name:
      `two main.ts processes on one KV file (LOOKOUT_WORKERS=${workers}): B sees A's failed attempt, sockets and logout`,
    sanitizeResources: false,
    fn: async () => {
      const dir = await Deno.makeTempDir({ prefix: "lookout-instances-" });
      const secret = randomSecret();
      const password = randomPassword();
      const env = {
        KV_PATH: `${dir}/kv.sqlite3`,
        JWT_SECRET: secret,
        LOOKOUT_WORKERS: workers,
        ADMIN_USERNAME: "ada",
        ADMIN_PASSWORD: password,
      };
      const a = await startProcess(env);
      const b = await startProcess(env);
      const clients: TestClient[] = [];
      const open = async (url: string, token: string) => {
        const client = await TestClient.open(url);
        clients.push(client);
        await client.auth(token);
        return client;
      };
      try {
        const key = await tokenKey(secret, "lookout", "lookout");
        const watcherToken =
          (await signAccessToken(key, { sub: "watcher", role: "viewer", ttlS: 600 }))
            .token;
        const watcher = await open(b.wsUrl, watcherToken);
        const first = await watcher.next("stats_update");
        // Every message with when it came, for timing several kinds at once.
        const arrivals: { message: ServerMessage; at: number }[] = [];
        watcher.ws.addEventListener("message", (e) => {
          arrivals.push({ message: JSON.parse(e.data), at: performance.now() });
        });
        /** How long after `since` the first message since then that `match`es came. */
        const arrival = async (since: number, match: (m: ServerMessage) => boolean) => {
          const found = await eventually(
            () => arrivals.find((x) => x.at >= since && match(x.message)),
            3000,
          );
          return found!.at - since;
        };
        watcher.send({ type: "subscribe", events: ["attempts", "presence"] });
        await watcher.next("subscribed");

        // Presence on B counts the sockets of A. Each change is made a
        // second after the last push, when B's push window is open: this
        // times the route between the instances, not the window.
        const { token, cookie } = await login(a.url, "ada", password);
        await sleep(1100);
        let since = performance.now();
        await open(a.wsUrl, token);
        const presenceMs = await arrival(since, (m) =>
          m.type === "presence" &&
          m.data.online.some((p) => p.name === "ada" && p.connections === 1));
        console.log(
          `workers=${workers}: a socket on A in B's presence after ${presenceMs.toFixed(0)} ms`,
        );
        assert.ok(presenceMs < 1500, `${presenceMs} ms`);

        // A failed attempt on A: a stats_update and an attempt event on B.
        const failures = first.data.attempts.failure;
        await sleep(1100);
        since = performance.now();
        assert.equal(await failAuth(a, "garbage-on-a"), "malformed_token");
        const [attemptMs, statsMs] = await Promise.all([
          arrival(since, (m) => m.type === "attempt" && m.data.reason === "malformed_token"),
          arrival(since, (m) => m.type === "stats_update" && m.data.attempts.failure > failures),
        ]);
        console.log(
          `workers=${workers}: A's failed attempt on B: attempt event ${
            attemptMs.toFixed(0)
          } ms, stats_update ${statsMs.toFixed(0)} ms`,
        );
        assert.ok(attemptMs < 1500, `attempt event after ${attemptMs} ms`);
        assert.ok(statsMs < 1500, `stats_update after ${statsMs} ms`);

        // A logout on A closes the session's socket on B with 4403.
        const victim = await open(b.wsUrl, token);
        const closed = timed(victim.closed);
        const res = await fetch(new URL("/auth/logout", a.url), {
          method: "POST",
          headers: { cookie, origin: a.url.origin },
        });
        assert.equal(res.status, 204);
        await res.body?.cancel();
        const close = await closed;
        console.log(
          `workers=${workers}: logout on A closed B's socket in ${close.ms.toFixed(0)} ms`,
        );
        assert.deepEqual(close.value, { code: 4403, reason: "revoked" });
        assert.ok(close.ms < 1000, `${close.ms} ms`);
      } finally {
        for (const client of clients) await client.close();
        for (const proc of [a, b]) {
          proc.child.kill("SIGTERM");
          await proc.status;
        }
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}
