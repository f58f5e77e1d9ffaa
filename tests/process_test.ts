/**
 * Lookout as a process (two workers on one port): a clean stop on SIGTERM,
 * and no answered attempt lost when it is killed with SIGKILL under load.
 */
import assert from "node:assert/strict";
import { signAccessToken, tokenKey } from "../lib/auth/tokens.ts";
import {
  claims,
  eventually,
  forge,
  randomSecret,
  rawUpgrade,
  startProcess,
  TestClient,
} from "./helpers.ts";
import type { Attempt } from "../shared/protocol.ts";

async function storedAttempts(path: string): Promise<Attempt[]> {
  const kv = await Deno.openKv(path);
  try {
    const out: Attempt[] = [];
    for await (const e of kv.list<Attempt>({ prefix: ["attempts"] })) out.push(e.value);
    return out;
  } finally {
    kv.close();
  }
}

Deno.test({
  name:
    "main.ts on SIGTERM: 503 to new upgrades, sockets close 1001, records committed, exit 0 within 10 s",
  sanitizeResources: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "lookout-stop-" });
    const secret = randomSecret();
    const key = await tokenKey(secret, "lookout", "lookout");
    const proc = await startProcess({
      KV_PATH: `${dir}/kv.sqlite3`,
      JWT_SECRET: secret,
      LOOKOUT_WORKERS: "2",
    });
    try {
      const clients: TestClient[] = [];
      for (let i = 0; i < 6; i++) {
        const c = await TestClient.open(proc.wsUrl);
        await c.auth(
          (await signAccessToken(key, { sub: `user${i}`, role: "admin", ttlS: 600 })).token,
        );
        clients.push(c);
      }
      const pending = await TestClient.open(proc.wsUrl);

      const stoppedAt = Date.now();
      proc.child.kill("SIGTERM");
      const closes = await Promise.all([...clients, pending].map((c) => c.closed));
      for (const close of closes) assert.equal(close.code, 1001, JSON.stringify(close));
      const late = await rawUpgrade(proc.wsUrl);
      assert.equal(late.status, 503, "an upgrade during the stop is refused with 503");
      assert.equal(late.headers.get("retry-after"), "1");

      const status = await proc.status;
      const took = Date.now() - stoppedAt;
      assert.equal(status.code, 0, proc.output());
      assert.ok(took < 10_000, `stopped in ${took} ms`);
      console.log(`SIGTERM to exit: ${took} ms`);

      const stored = await storedAttempts(`${dir}/kv.sqlite3`);
      assert.equal(stored.filter((a) => a.outcome === "success").length, 6);
      const instances = new Set(proc.output().split("\n").filter((l) => l.includes('"listening"')));
      assert.equal(instances.size, 2, "two workers served");
    } finally {
      try {
        proc.child.kill("SIGKILL");
      } catch { /* already gone */ }
      await proc.status;
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "main.ts killed with SIGKILL under load: every answered attempt is in KV after restart, none twice",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "lookout-crash-" });
    const path = `${dir}/kv.sqlite3`;
    const secret = randomSecret();
    const env = { KV_PATH: path, JWT_SECRET: secret, LOOKOUT_WORKERS: "2", TRUST_PROXY: "true" };
    const proc = await startProcess(env);
    const answered = new Set<string>();
    const sent = new Set<string>();
    let running = true;
    let n = 0;
    const worker = async (w: number) => {
      while (running) {
        const i = n++;
        const now = Math.floor(Date.now() / 1000);
        const jti = `crash-${w}-${i}`;
        // Half valid, half expired but signed: both are recorded with their jti.
        const token = i % 2 === 0
          ? await forge(claims({ sub: `u${w}`, jti }), secret)
          : await forge(claims({ sub: `u${w}`, jti, iat: now - 100, exp: now - 50 }), secret);
        try {
          const c = new TestClient(proc.wsUrl, {
            headers: { "X-Forwarded-For": `10.9.${w}.${i % 250}` },
          });
          await c.opened;
          sent.add(jti);
          c.send({ type: "auth", token });
          const first = await c.next(undefined, 3000);
          if (first.type === "authenticated" || first.type === "auth_failed") answered.add(jti);
          await c.close();
        } catch {
          // The server died under us: this attempt got no answer.
        }
      }
    };
    const workers = Array.from({ length: 8 }, (_, w) => worker(w));
    await new Promise((r) => setTimeout(r, 1500));
    proc.child.kill("SIGKILL");
    await proc.status;
    running = false;
    await Promise.all(workers);
    assert.ok(answered.size > 50, `only ${answered.size} answers before the kill`);

    const restarted = await startProcess(env);
    try {
      const stored = await storedAttempts(path);
      const seen = new Map<string, number>();
      for (const a of stored) if (a.tokenId) seen.set(a.tokenId, (seen.get(a.tokenId) ?? 0) + 1);
      const lost = [...answered].filter((jti) => !seen.has(jti));
      const twice = [...seen].filter(([, count]) => count > 1);
      console.log(
        `answered ${answered.size} of ${sent.size} sent; stored ${stored.length}; lost ${lost.length}; duplicated ${twice.length}`,
      );
      assert.deepEqual(lost, [], "every attempt a client got an answer for is durable");
      assert.deepEqual(twice, [], "no attempt stored twice");
      const health = await fetch(new URL("/healthz", restarted.url));
      assert.equal(health.status, 200);
      await health.body?.cancel();
    } finally {
      restarted.child.kill("SIGTERM");
      await restarted.status;
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** Runs main.ts with `env` until it exits or `timeoutMs` passes (then it is killed). */
async function runUntilExit(env: Record<string, string>, timeoutMs: number) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../main.ts", import.meta.url).pathname],
    env: { HOSTNAME: "127.0.0.1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<"timeout">((r) => timer = setTimeout(() => r("timeout"), timeoutMs));
  const first = await Promise.race([child.status, timedOut]);
  clearTimeout(timer);
  if (first === "timeout") child.kill("SIGKILL");
  const out = await child.output();
  const decoder = new TextDecoder();
  return {
    exited: first !== "timeout",
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
  };
}

Deno.test({
  name:
    "main.ts on a port another process serves exits 1 with one line, and the first keeps serving alone",
  sanitizeResources: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "lookout-port-" });
    const password = crypto.randomUUID();
    const first = await startProcess({
      KV_PATH: `${dir}/first.sqlite3`,
      JWT_SECRET: randomSecret(),
      LOOKOUT_WORKERS: "2",
      ADMIN_USERNAME: "root",
      ADMIN_PASSWORD: password,
    });
    try {
      const listening = () => first.output().split("\n").filter((l) => l.includes('"listening"'));
      await eventually(() => listening().length === 2, 20_000, "both workers listening");
      const port = first.url.port;
      // Another store, as in the report: with it, logins answered 401 or 200 by turns.
      for (const workers of ["2", "1"]) {
        const second = await runUntilExit({
          PORT: port,
          KV_PATH: `${dir}/second-${workers}.sqlite3`,
          JWT_SECRET: randomSecret(),
          LOOKOUT_WORKERS: workers,
        }, 15_000);
        assert.ok(second.exited, `a second process (${workers} workers) kept running`);
        assert.equal(second.code, 1);
        assert.equal(
          second.stderr,
          `Cannot start as port ${port} is already in use by another process\n`,
        );
        assert.equal(second.stdout, "");
      }
      for (let i = 0; i < 8; i++) {
        const res = await fetch(new URL("/auth/login", first.url), {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ username: "root", password }),
        });
        await res.body?.cancel();
        assert.equal(res.status, 200, `login ${i + 1} was answered by the first process`);
      }
      assert.equal(listening().length, 2);
    } finally {
      first.child.kill("SIGTERM");
      await first.status;
      await Deno.remove(dir, { recursive: true });
    }
  },
});
