/**
 * `deno task token`: run as a real subprocess, its token checked with
 * lib/auth/tokens.ts and by a real server.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { jwtSecretKey } from "../lib/store/keys.ts";
import { tokenKey, verifyAccessToken } from "../lib/auth/tokens.ts";
import { startTestServer, TestClient } from "./helpers.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/** Variables that would change what the CLI does; "" counts as unset. */
const NEUTRAL_ENV: Record<string, string> = {
  JWT_SECRET: "",
  JWT_ISSUER: "",
  JWT_AUDIENCE: "",
  ACCESS_TOKEN_TTL_S: "",
  ADMIN_USERNAME: "",
  ADMIN_PASSWORD: "",
  DENO_DEPLOYMENT_ID: "",
  NO_COLOR: "1",
};

/** A random 64-character secret. */
function secret64(): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(32)),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `deno task token ...args` in the repo root; all output is read to the end. */
async function token(args: string[], env: Record<string, string>): Promise<Run> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["task", "token", ...args],
    cwd: ROOT,
    env: { ...NEUTRAL_ENV, ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** The one line of stdout, which must be a compact JWS. */
function oneToken(run: Run): string {
  assert.equal(run.code, 0, `deno task token failed: ${run.stderr}`);
  const lines = run.stdout.split("\n").filter((line) => line !== "");
  assert.equal(lines.length, 1, `expected one stdout line, got: ${JSON.stringify(run.stdout)}`);
  assert.match(lines[0], COMPACT_JWS);
  return lines[0];
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "lookout_cli_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("deno task token prints one compact JWS that verifyAccessToken() accepts", async () => {
  await withTempDir(async (dir) => {
    const secret = secret64();
    const before = Math.floor(Date.now() / 1000);
    const run = await token(["--sub", "alice", "--role", "admin", "--ttl", "600"], {
      JWT_SECRET: secret,
      KV_PATH: `${dir}/lookout.sqlite3`,
    });
    const after = Math.ceil(Date.now() / 1000);
    const jwt = oneToken(run);
    assert.ok(!run.stderr.includes(secret), "stderr shows the secret");

    const result = await verifyAccessToken(await tokenKey(secret, "lookout", "lookout"), jwt);
    assert.ok(result.ok, `the token does not verify: ${JSON.stringify(result)}`);
    assert.equal(result.claims.sub, "alice");
    assert.equal(result.claims.role, "admin");
    assert.ok(
      result.claims.exp >= before + 600 && result.claims.exp <= after + 600,
      `exp ${result.claims.exp} is not now + 600 (${before + 600}..${after + 600})`,
    );
    assert.equal(result.claims.exp - result.claims.iat, 600);
    assert.equal(typeof result.claims.jti, "string");

    // Another secret does not verify it: it really is signed with JWT_SECRET.
    const other = await verifyAccessToken(await tokenKey(secret64(), "lookout", "lookout"), jwt);
    assert.equal(other.ok, false);
  });
});

Deno.test("deno task token without --sub exits non-zero with a clear stderr line", async () => {
  await withTempDir(async (dir) => {
    const run = await token(["--role", "admin", "--ttl", "600"], {
      JWT_SECRET: secret64(),
      KV_PATH: `${dir}/lookout.sqlite3`,
    });
    assert.notEqual(run.code, 0);
    assert.equal(run.stdout.trim(), "", "a token was printed anyway");
    assert.ok(
      run.stderr.split("\n").some((line) => /--sub/.test(line) && /missing|required/i.test(line)),
      `no stderr line says --sub is missing: ${run.stderr}`,
    );
  });
});

Deno.test("deno task token --ttl abc exits non-zero and names --ttl", async () => {
  await withTempDir(async (dir) => {
    const run = await token(["--sub", "alice", "--ttl", "abc"], {
      JWT_SECRET: secret64(),
      KV_PATH: `${dir}/lookout.sqlite3`,
    });
    assert.notEqual(run.code, 0);
    assert.equal(run.stdout.trim(), "", "a token was printed anyway");
    assert.match(run.stderr, /--ttl/);
  });
});

Deno.test("deno task token with a too-short JWT_SECRET exits non-zero without showing it", async () => {
  await withTempDir(async (dir) => {
    const short = secret64().slice(0, 31);
    const run = await token(["--sub", "alice"], {
      JWT_SECRET: short,
      KV_PATH: `${dir}/lookout.sqlite3`,
    });
    assert.notEqual(run.code, 0);
    assert.equal(run.stdout.trim(), "");
    assert.match(run.stderr, /JWT_SECRET/);
    assert.ok(!run.stderr.includes(short), "stderr shows the secret");
  });
});

Deno.test("deno task token without JWT_SECRET signs with the KV secret a later server accepts", async () => {
  await withTempDir(async (dir) => {
    // A folder that does not exist yet: the CLI creates it with the KV file.
    const kvPath = `${dir}/data/lookout.sqlite3`;
    const first = await token(["--sub", "alice", "--role", "admin", "--ttl", "600"], {
      KV_PATH: kvPath,
    });
    const created = oneToken(first);
    // The second run finds the secret the first one kept, and does not replace it.
    const second = await token(["--sub", "bob", "--role", "viewer", "--ttl", "600"], {
      KV_PATH: kvPath,
    });
    const reused = oneToken(second);

    const kv = await Deno.openKv(kvPath);
    let stored: unknown;
    try {
      stored = (await kv.get(jwtSecretKey())).value;
    } finally {
      kv.close();
    }
    assert.equal(typeof stored, "string", "no secret kept in the KV file");
    for (const run of [first, second]) {
      assert.ok(!run.stderr.includes(stored as string), "stderr shows the secret");
    }

    const server = await startTestServer({ JWT_SECRET: "", KV_PATH: kvPath });
    try {
      for (const [jwt, user] of [[created, "alice"], [reused, "bob"]] as const) {
        const client = await TestClient.open(server.wsUrl);
        try {
          const authenticated = await client.auth(jwt);
          assert.equal(authenticated.user.name, user);
        } finally {
          await client.close();
        }
      }
    } finally {
      await server.close();
    }
  });
});
