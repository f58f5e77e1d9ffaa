/**
 * Without JWT_SECRET the server generates one secret, keeps it in the KV
 * file, logs that it did (never the secret) and reuses it on every start.
 */
import assert from "node:assert/strict";
import { loadConfig } from "../lib/config.ts";
import { jwtSecretKey } from "../lib/store/keys.ts";
import { createLogger } from "../lib/log.ts";
import { resolveJwtSecret } from "../lib/auth/secret.ts";
import { verifyAccessToken } from "../lib/auth/tokens.ts";
import { startTestServer, TestClient } from "./helpers.ts";

/** `startTestServer` on the KV file `kvPath`, with JWT_SECRET unset ("" counts as unset). */
function startOnFile(kvPath: string) {
  return startTestServer({ JWT_SECRET: "", KV_PATH: kvPath });
}

function generatedLines(logs: string[]): string[] {
  return logs.filter((line) => /generat/i.test(line));
}

async function storedSecret(kvPath: string): Promise<unknown> {
  const kv = await Deno.openKv(kvPath);
  try {
    return (await kv.get(jwtSecretKey())).value;
  } finally {
    kv.close();
  }
}

Deno.test("startLookout() without JWT_SECRET generates a secret once, logs it never, and reuses it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lookout_secret_" });
  try {
    const kvPath = `${dir}/lookout.sqlite3`;
    assert.equal(loadConfig({ JWT_SECRET: "", KV_PATH: kvPath }).jwtSecret, undefined);

    const first = await startOnFile(kvPath);
    let token: string;
    let firstSecret: string;
    try {
      firstSecret = (await first.deps.kv.get<string>(jwtSecretKey())).value!;
      assert.ok(
        new TextEncoder().encode(firstSecret).length >= 32,
        "the generated secret is shorter than 32 bytes",
      );
      assert.equal(
        generatedLines(first.logs).length,
        1,
        `expected one line saying a secret was generated, got: ${first.logs.join("\n")}`,
      );
      token = await first.mint({ sub: "alice", role: "admin", ttlS: 600 });
    } finally {
      await first.close();
    }
    assert.equal(await storedSecret(kvPath), firstSecret, "the secret is not the one kept in KV");

    const second = await startOnFile(kvPath);
    try {
      const secondSecret = (await second.deps.kv.get<string>(jwtSecretKey())).value!;
      assert.equal(secondSecret, firstSecret, "the second start uses another secret");
      assert.deepEqual(
        generatedLines(second.logs),
        [],
        "the second start says it generated a secret again",
      );
      const client = await TestClient.open(second.wsUrl);
      try {
        const authenticated = await client.auth(token);
        assert.deepEqual(authenticated.user, { name: "alice", role: "admin" });
      } finally {
        await client.close();
      }
    } finally {
      await second.close();
    }

    for (const line of [...first.logs, ...second.logs]) {
      assert.ok(!line.includes(firstSecret), `a log line contains the secret: ${line}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("resolveJwtSecret() on two KV handles of one file at once agrees on one secret", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lookout_secret_race_" });
  try {
    // Several fresh files: each round is a new race for the first write.
    for (let round = 0; round < 8; round++) {
      const kvPath = `${dir}/race_${round}.sqlite3`;
      const a = await Deno.openKv(kvPath);
      const b = await Deno.openKv(kvPath);
      const logs: string[] = [];
      const logger = createLogger({ level: "debug", write: (line) => logs.push(line) });
      try {
        // allSettled, not all: both calls must finish before the handles close.
        const settled = await Promise.allSettled([
          resolveJwtSecret(a, undefined, logger),
          resolveJwtSecret(b, undefined, logger),
        ]);
        const [sa, sb] = settled.map((s, i) => {
          if (s.status === "rejected") {
            assert.fail(`round ${round}: resolveJwtSecret() on handle ${i} threw: ${s.reason}`);
          }
          return s.value;
        });
        assert.equal(typeof sa, "string");
        assert.ok(new TextEncoder().encode(sa).length >= 32, "the secret is too short");
        assert.equal(sa, sb, `round ${round}: the two handles got different secrets`);
        assert.equal((await a.get(jwtSecretKey())).value, sa);
        assert.equal(
          generatedLines(logs).length,
          1,
          `round ${round}: expected one "generated" line, got: ${logs.join("\n")}`,
        );
        for (const line of logs) assert.ok(!line.includes(sa), "a log line contains the secret");
        // A third resolve, later, still finds the same secret.
        assert.equal(await resolveJwtSecret(b, undefined, logger), sa);
      } finally {
        a.close();
        b.close();
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("resolveJwtSecret() returns JWT_SECRET when set and stores nothing", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const configured = crypto.randomUUID() + crypto.randomUUID();
    const logs: string[] = [];
    const logger = createLogger({ write: (line) => logs.push(line) });
    assert.equal(await resolveJwtSecret(kv, configured, logger), configured);
    assert.equal((await kv.get(jwtSecretKey())).versionstamp, null);
    for (const line of logs) assert.ok(!line.includes(configured));
  } finally {
    kv.close();
  }
});

Deno.test("startLookout() creates the folder of a fresh KV_PATH", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lookout_kvpath_" });
  try {
    const kvPath = `${dir}/data/nested/lookout.sqlite3`;
    await assert.rejects(Deno.stat(`${dir}/data`), Deno.errors.NotFound);
    const server = await startOnFile(kvPath);
    try {
      assert.ok((await Deno.stat(kvPath)).isFile, "the KV file was not created");
      const res = await fetch(new URL("/healthz", server.url));
      assert.equal(res.status, 200, await res.text());
      // The server really signs with the secret it keeps in that file.
      const token = await server.mint();
      const result = await verifyAccessToken(server.deps.tokenKey, token);
      assert.ok(result.ok);
    } finally {
      await server.close();
    }
    assert.equal(typeof await storedSecret(kvPath), "string", "no secret kept in the new file");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("openKv() leaves an https:// connect URL alone instead of making folders for it", async () => {
  const { openKv } = await import("../lib/store/kv.ts");
  const dir = await Deno.makeTempDir();
  const cwd = Deno.cwd();
  Deno.chdir(dir);
  try {
    // No access token is set, so opening fails; what matters is what it tried.
    await openKv("https://kv.invalid/v2/databases/x/connect").then((kv) => kv.close(), () => {});
    const made = [];
    for await (const entry of Deno.readDir(dir)) made.push(entry.name);
    assert.deepEqual(made, []);
  } finally {
    Deno.chdir(cwd);
    await Deno.remove(dir, { recursive: true });
  }
});
