/**
 * Users and passwords (issue 3): the `user:add` task, the first admin from
 * the environment, how passwords are stored, and what a failed login reveals.
 */
import assert from "node:assert/strict";
import { decodeJwt } from "jose";
import { getUser, putUser } from "../lib/auth/users.ts";
import {
  randomSecret,
  startProcess,
  startTestServer,
  TestClient,
  type TestServer,
} from "./helpers.ts";

const repoRoot = new URL("..", import.meta.url).pathname;

/** Runs `deno task user:add ...args` on the KV file `kvPath`. */
async function userAdd(
  kvPath: string,
  args: string[],
  options: { password?: string; stdin?: string } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["task", "-q", "user:add", ...args],
    cwd: repoRoot,
    // An empty LOOKOUT_PASSWORD counts as unset, whatever the parent has.
    env: { KV_PATH: kvPath, LOOKOUT_PASSWORD: options.password ?? "", NO_COLOR: "1" },
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const { code, stdout, stderr } = await child.output();
  const decoder = new TextDecoder();
  return { code, stdout: decoder.decode(stdout), stderr: decoder.decode(stderr) };
}

async function login(server: TestServer, username: string, password: string) {
  return await fetch(new URL("/auth/login", server.url), {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username, password }),
  });
}

async function loginStatus(server: TestServer, username: string, password: string) {
  const res = await login(server, username, password);
  await res.body?.cancel();
  return res.status;
}

function payloadOf(token: string): Record<string, unknown> {
  return decodeJwt(token);
}

/** A temporary KV file, removed on dispose. */
async function tempKvPath() {
  const path = await Deno.makeTempFile({ prefix: "lookout_users_", suffix: ".sqlite3" });
  return {
    path,
    async [Symbol.asyncDispose]() {
      for (const suffix of ["", "-shm", "-wal"]) {
        await Deno.remove(path + suffix).catch(() => {});
      }
    },
  };
}

Deno.test("deno task user:add creates a user who can log in with that password and role", async () => {
  await using file = await tempKvPath();
  const password = crypto.randomUUID();
  const added = await userAdd(file.path, ["carol", "--role", "viewer"], { password });
  assert.equal(added.code, 0, added.stderr);
  assert.match(added.stdout, /Created viewer carol/);

  const kv = await Deno.openKv(file.path);
  try {
    await using server = await startTestServer({}, { kv });
    const res = await login(server, "carol", password);
    assert.equal(res.status, 200);
    const body = await res.json();
    assert.deepEqual(body.user, { name: "carol", role: "viewer" });
    assert.equal(payloadOf(body.token).role, "viewer");
    assert.equal(payloadOf(body.token).sub, "carol");
  } finally {
    kv.close();
  }
});

Deno.test("deno task user:add resets the password of an existing user, from the env or stdin", async () => {
  await using file = await tempKvPath();
  const first = crypto.randomUUID();
  const second = crypto.randomUUID();
  const third = crypto.randomUUID();
  assert.equal(
    (await userAdd(file.path, ["carol", "--role", "viewer"], { password: first })).code,
    0,
  );

  const kv = await Deno.openKv(file.path);
  try {
    await using server = await startTestServer({}, { kv });
    const reset = await userAdd(file.path, ["carol", "--role", "viewer"], { password: second });
    assert.equal(reset.code, 0, reset.stderr);
    assert.match(reset.stdout, /Reset viewer carol/);
    assert.equal(await loginStatus(server, "carol", first), 401, "the old password is gone");
    assert.equal(await loginStatus(server, "carol", second), 200);

    const piped = await userAdd(file.path, ["carol", "--role", "admin"], { stdin: `${third}\n` });
    assert.equal(piped.code, 0, piped.stderr);
    assert.equal(await loginStatus(server, "carol", second), 401);
    const res = await login(server, "carol", third);
    assert.equal(res.status, 200);
    assert.equal((await res.json()).user.role, "admin", "the reset also sets the role");
  } finally {
    kv.close();
  }
});

Deno.test("deno task user:add on an existing user ends every session, token and socket of theirs", async () => {
  await using file = await tempKvPath();
  const first = crypto.randomUUID();
  const second = crypto.randomUUID();
  assert.equal(
    (await userAdd(file.path, ["dora", "--role", "admin"], { password: first })).code,
    0,
  );

  const kv = await Deno.openKv(file.path);
  try {
    await using server = await startTestServer({}, { kv });
    const res = await login(server, "dora", first);
    assert.equal(res.status, 200);
    const { token } = await res.json();
    const cookie = (res.headers.get("set-cookie") ?? "").split(";")[0];
    const client = await TestClient.open(server.wsUrl);
    await client.auth(token);
    // Bob is not reset: his socket stays.
    const bystander = await TestClient.open(server.wsUrl);
    await bystander.auth(await server.mint({ sub: "bob" }));

    // The CLI is its own process on the same KV file, as in production.
    const reset = await userAdd(file.path, ["dora", "--role", "viewer"], { password: second });
    assert.equal(reset.code, 0, reset.stderr);
    assert.match(reset.stdout, /Reset viewer dora/);

    let timer: ReturnType<typeof setTimeout> | undefined;
    const closed = await Promise.race([
      client.closed,
      new Promise((r) => timer = setTimeout(() => r("still open after 2 s"), 2000)),
    ]);
    clearTimeout(timer);
    assert.deepEqual(closed, { code: 4403, reason: "revoked" });

    const refreshed = await fetch(new URL("/auth/token", server.url), {
      method: "POST",
      headers: { Cookie: cookie },
    });
    await refreshed.body?.cancel();
    assert.equal(refreshed.status, 401, "the old session gets no more tokens");
    const page = await fetch(new URL("/admin", server.url), {
      headers: { Cookie: cookie },
      redirect: "manual",
    });
    await page.body?.cancel();
    assert.equal(page.status, 302, "the old session no longer opens the dashboard");
    assert.equal(page.headers.get("location"), "/login");

    const again = await TestClient.open(server.wsUrl);
    again.send({ type: "auth", token });
    assert.equal((await again.next("auth_failed")).reason, "revoked", "the old token is dead");
    assert.deepEqual(await again.closed, { code: 4403, reason: "revoked" });
    const api = await fetch(new URL("/api/v1/stats", server.url), {
      headers: { Authorization: `Bearer ${token}` },
    });
    await api.body?.cancel();
    assert.equal(api.status, 401, "the old token is dead on the API too");

    // The new password and role work at once, token and socket included.
    const fresh = await login(server, "dora", second);
    assert.equal(fresh.status, 200);
    const body = await fresh.json();
    assert.deepEqual(body.user, { name: "dora", role: "viewer" });
    const renewed = await TestClient.open(server.wsUrl);
    assert.deepEqual((await renewed.auth(body.token)).user, { name: "dora", role: "viewer" });
    await renewed.close();

    assert.equal(bystander.ws.readyState, WebSocket.OPEN, "other users keep their sockets");
    await bystander.close();
  } finally {
    kv.close();
  }
});

Deno.test("deno task user:add refuses a bad name, role or password with one clear line, changing nothing", async () => {
  await using file = await tempKvPath();
  const password = crypto.randomUUID();
  assert.equal((await userAdd(file.path, ["carol", "--role", "viewer"], { password })).code, 0);
  const read = async (name: string) => {
    const kv = await Deno.openKv(file.path);
    try {
      return await getUser(kv, name);
    } finally {
      kv.close();
    }
  };
  const before = await read("carol");
  assert.ok(before);

  const cases: [string[], string | undefined, RegExp][] = [
    [["bad name!", "--role", "viewer"], password, /NAME must be 1 to 64 letters/],
    [
      ["carol", "--role", "root"],
      password,
      /--role must be admin or viewer: current value is "root"/,
    ],
    [["carol", "--role", "viewer"], "short", /password must be 8 to 1024 characters: it has 5/],
    [["carol", "dave"], password, /exactly one NAME/],
  ];
  for (const [args, pw, message] of cases) {
    const result = await userAdd(file.path, args, { password: pw });
    assert.notEqual(result.code, 0, args.join(" "));
    const first = result.stderr.split("\n")[0];
    assert.match(first, /^Cannot add the user/, result.stderr);
    assert.match(first, message);
    assert.ok(!result.stderr.includes(password), "the password is never echoed");
  }
  assert.deepEqual(await read("carol"), before, "carol is unchanged");
  assert.equal(await read("bad name!"), null);
  assert.equal(await read("dave"), null);
});

Deno.test("ADMIN_USERNAME and ADMIN_PASSWORD create the first admin when no user exists", async () => {
  const password = crypto.randomUUID();
  await using server = await startTestServer({
    ADMIN_USERNAME: "root-admin",
    ADMIN_PASSWORD: password,
  });
  const res = await login(server, "root-admin", password);
  assert.equal(res.status, 200);
  assert.deepEqual((await res.json()).user, { name: "root-admin", role: "admin" });
  assert.ok(server.logs.some((l) => l.includes("created the first admin")));
});

Deno.test("ADMIN_USERNAME and ADMIN_PASSWORD do nothing when a user already exists", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const existing = crypto.randomUUID();
    await putUser(kv, { name: "bob", role: "viewer", password: existing });
    const bob = await getUser(kv, "bob");
    const password = crypto.randomUUID();
    await using server = await startTestServer(
      { ADMIN_USERNAME: "bob", ADMIN_PASSWORD: password },
      { kv },
    );
    assert.deepEqual(await getUser(kv, "bob"), bob, "the existing user is untouched");
    assert.equal(await loginStatus(server, "bob", password), 401);
    assert.equal(await loginStatus(server, "bob", existing), 200);

    await using other = await startTestServer(
      { ADMIN_USERNAME: "eve", ADMIN_PASSWORD: password },
      { kv },
    );
    assert.equal(await getUser(kv, "eve"), null);
    assert.equal(await loginStatus(other, "eve", password), 401);
    assert.ok(!other.logs.some((l) => l.includes("created the first admin")));
  } finally {
    kv.close();
  }
});

function fromBase64(text: string): Uint8Array {
  return Uint8Array.fromBase64(text);
}

Deno.test("passwords are stored as PBKDF2-SHA256 with 600,000 iterations and a salt per user", async () => {
  await using server = await startTestServer();
  const password = crypto.randomUUID();
  await putUser(server.deps.kv, { name: "kim", role: "admin", password });
  await putUser(server.deps.kv, { name: "lee", role: "viewer", password });
  const kim = (await getUser(server.deps.kv, "kim"))!;
  const lee = (await getUser(server.deps.kv, "lee"))!;

  for (const user of [kim, lee]) {
    assert.equal(user.password.alg, "pbkdf2-sha256");
    assert.ok(user.password.iterations >= 600_000);
    assert.equal(fromBase64(user.password.salt).length, 16);
  }
  assert.notEqual(kim.password.salt, lee.password.salt, "one salt per user");
  assert.notEqual(kim.password.hash, lee.password.hash, "the same password hashes differently");

  // The stored hash is what WebCrypto's PBKDF2 gives for that salt and count.
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(password),
    "PBKDF2",
    false,
    ["deriveBits"],
  );
  const bits = await crypto.subtle.deriveBits(
    {
      name: "PBKDF2",
      hash: "SHA-256",
      salt: fromBase64(kim.password.salt) as BufferSource,
      iterations: kim.password.iterations,
    },
    key,
    256,
  );
  assert.deepEqual(new Uint8Array(bits), fromBase64(kim.password.hash));
});

/** Every key and value in `kv`, as text. */
async function dumpKv(kv: Deno.Kv): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of kv.list({ prefix: [] })) {
    const value = entry.value instanceof Uint8Array
      ? new TextDecoder().decode(entry.value)
      : JSON.stringify(entry.value, (_k, v) => typeof v === "bigint" ? String(v) : v);
    out.push(`${JSON.stringify(entry.key)} ${value}`);
  }
  return out;
}

Deno.test("no password reaches a KV value or a log line after logins, good and bad", async () => {
  await using server = await startTestServer({}, { limits: { loginFreeFailures: 100 } });
  const password = crypto.randomUUID();
  const wrong = crypto.randomUUID();
  const unknown = crypto.randomUUID();
  await putUser(server.deps.kv, { name: "mia", role: "admin", password });
  assert.equal(await loginStatus(server, "mia", password), 200);
  assert.equal(await loginStatus(server, "mia", wrong), 401);
  assert.equal(await loginStatus(server, "nobody", unknown), 401);
  const form = await fetch(new URL("/auth/login", server.url), {
    method: "POST",
    body: new URLSearchParams({ username: "mia", password }),
    redirect: "manual",
  });
  assert.equal(form.status, 303);
  await form.body?.cancel();
  await server.deps.attempts.flush();

  const entries = await dumpKv(server.deps.kv);
  assert.ok(entries.some((e) => e.startsWith('["users","mia"]')), "the scan sees the user");
  assert.ok(server.logs.some((l) => l.includes('"login"')), "the scan sees the login lines");
  for (const secret of [password, wrong, unknown]) {
    for (const text of [...entries, ...server.logs]) {
      assert.ok(!text.includes(secret), `a password appears in: ${text.slice(0, 120)}`);
    }
  }
});

Deno.test("POST /auth/login answers an unknown user and a wrong password with identical 401s", async () => {
  await using server = await startTestServer({}, {
    limits: { loginFreeFailures: 100, loginPerIp: 100 },
  });
  await putUser(server.deps.kv, { name: "noor", role: "admin", password: crypto.randomUUID() });
  const unknown = await login(server, "nobody-here", crypto.randomUUID());
  const wrong = await login(server, "noor", crypto.randomUUID());
  const headers = (res: Response) =>
    // Date and the request id differ on every response, whatever it answers.
    [...res.headers].filter(([name]) => name !== "date" && name !== "x-request-id")
      .map(([n, v]) => `${n}: ${v}`);
  assert.equal(unknown.status, 401);
  assert.equal(wrong.status, 401);
  assert.deepEqual(headers(unknown), headers(wrong));
  const [a, b] = [await unknown.text(), await wrong.text()];
  assert.equal(a, b);
  assert.deepEqual(JSON.parse(a), {
    error: "invalid_credentials",
    message:
      "The user name or the password is wrong: check both, or have an admin reset the password with deno task user:add NAME",
  });
});

function median(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.floor(sorted.length / 2)];
}

// Not a flaky micro-benchmark: each request that reaches the hash costs a
// 600,000-iteration PBKDF2 (tens to hundreds of ms), which dwarfs the noise of
// a loopback request. A path that skipped the hash would be faster by that
// whole cost, far past a factor of 2; the median of interleaved runs drops a
// stray slow one.
Deno.test("POST /auth/login spends the same time on an unknown user as on a wrong password", async () => {
  await using server = await startTestServer({}, {
    limits: { loginFreeFailures: 100, loginPerIp: 100 },
  });
  await putUser(server.deps.kv, { name: "omar", role: "admin", password: crypto.randomUUID() });
  const unknown: number[] = [];
  const wrong: number[] = [];
  const time = async (name: string) => {
    const started = performance.now();
    assert.equal(await loginStatus(server, name, crypto.randomUUID()), 401);
    return performance.now() - started;
  };
  for (let i = 0; i < 5; i++) {
    unknown.push(await time(`ghost${i}`));
    wrong.push(await time("omar"));
  }
  const [u, w] = [median(unknown), median(wrong)];
  console.log(`median 401: unknown user ${u.toFixed(1)} ms, wrong password ${w.toFixed(1)} ms`);
  assert.ok(Math.max(u, w) / Math.min(u, w) < 2, `unknown ${u} ms vs wrong ${w} ms`);
});

Deno.test("POST /auth/login answers a 1 MB password with 400 before any hashing", async () => {
  await using server = await startTestServer();
  await putUser(server.deps.kv, { name: "pia", role: "admin", password: crypto.randomUUID() });
  // One wrong password, for the cost of a hash on this machine.
  let started = performance.now();
  assert.equal(await loginStatus(server, "pia", crypto.randomUUID()), 401);
  const hashMs = performance.now() - started;

  for (const size of [1024 * 1024, 1025]) {
    started = performance.now();
    const res = await login(server, "pia", "p".repeat(size));
    const body = await res.json();
    const ms = performance.now() - started;
    console.log(
      `${size}-character password: ${res.status} in ${ms.toFixed(1)} ms (a hash: ${
        hashMs.toFixed(1)
      } ms)`,
    );
    assert.equal(res.status, 400);
    assert.equal(body.error, "invalid_request");
    assert.ok(ms < 200, `${ms} ms`);
  }
});

/** Runs `deno task <task> ...args` on the KV file `kvPath`. */
async function userTask(
  task: "user:list" | "user:remove",
  kvPath: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["task", "-q", task, ...args],
    cwd: repoRoot,
    env: { KV_PATH: kvPath, NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return { code, stdout: decoder.decode(stdout), stderr: decoder.decode(stderr) };
}

Deno.test("deno task user:list prints every user as a table or as JSON, never a password hash", async () => {
  await using file = await tempKvPath();
  const empty = await userTask("user:list", file.path, []);
  assert.equal(empty.code, 0, empty.stderr);
  assert.match(empty.stdout, /No users yet: create one with deno task user:add/);

  const password = crypto.randomUUID();
  assert.equal((await userAdd(file.path, ["ada", "--role", "admin"], { password })).code, 0);
  assert.equal((await userAdd(file.path, ["carol", "--role", "viewer"], { password })).code, 0);

  const table = await userTask("user:list", file.path, []);
  assert.equal(table.code, 0, table.stderr);
  const lines = table.stdout.trimEnd().split("\n");
  assert.equal(lines.length, 3);
  assert.match(lines[0], /^NAME\s+ROLE\s+CREATED \(UTC\)\s+CHANGED \(UTC\)$/);
  assert.match(lines[1], /^ada\s+admin\s+\d{4}-\d\d-\d\d \d\d:\d\d\s+\d{4}-\d\d-\d\d \d\d:\d\d$/);
  assert.match(lines[2], /^carol\s+viewer\s+/);

  const json = await userTask("user:list", file.path, ["--json"]);
  assert.equal(json.code, 0, json.stderr);
  const users = JSON.parse(json.stdout);
  assert.deepEqual(users.map((u: { name: string; role: string }) => [u.name, u.role]), [
    ["ada", "admin"],
    ["carol", "viewer"],
  ]);
  assert.ok(!Number.isNaN(Date.parse(users[0].createdAt)));
  assert.doesNotMatch(json.stdout + table.stdout, /password|argon|pbkdf|hash/i);

  const bad = await userTask("user:list", file.path, ["ada"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /Cannot list the users as no NAME is taken/);
});

Deno.test("deno task user:remove deletes the user and ends their sessions, tokens and sockets in a running server", async () => {
  await using file = await tempKvPath();
  const password = crypto.randomUUID();
  assert.equal((await userAdd(file.path, ["dora", "--role", "admin"], { password })).code, 0);
  assert.equal((await userAdd(file.path, ["bob", "--role", "admin"], { password })).code, 0);
  const server = await startProcess({
    KV_PATH: file.path,
    JWT_SECRET: randomSecret(),
    LOOKOUT_WORKERS: "1",
  });
  try {
    const signIn = async (name: string) => {
      const res = await fetch(new URL("/auth/login", server.url), {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ username: name, password }),
      });
      assert.equal(res.status, 200);
      const { token } = await res.json();
      return { token, cookie: (res.headers.get("set-cookie") ?? "").split(";")[0] };
    };
    const dora = await signIn("dora");
    const client = await TestClient.open(server.wsUrl);
    await client.auth(dora.token);
    const bystander = await TestClient.open(server.wsUrl);
    await bystander.auth((await signIn("bob")).token);

    const removed = await userTask("user:remove", file.path, ["dora"]);
    assert.equal(removed.code, 0, removed.stderr);
    assert.match(removed.stdout, /Removed admin dora: every session and token dora had is revoked/);

    let timer: ReturnType<typeof setTimeout> | undefined;
    const closed = await Promise.race([
      client.closed,
      new Promise((r) => timer = setTimeout(() => r("still open after 3 s"), 3000)),
    ]);
    clearTimeout(timer);
    assert.deepEqual(closed, { code: 4403, reason: "revoked" });

    const api = await fetch(new URL("/api/v1/stats", server.url), {
      headers: { Authorization: `Bearer ${dora.token}` },
    });
    await api.body?.cancel();
    assert.equal(api.status, 401, "the token is dead");
    const refreshed = await fetch(new URL("/auth/token", server.url), {
      method: "POST",
      headers: { Cookie: dora.cookie },
    });
    await refreshed.body?.cancel();
    assert.equal(refreshed.status, 401, "the session is dead");
    const again = await fetch(new URL("/auth/login", server.url), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username: "dora", password }),
    });
    await again.body?.cancel();
    assert.equal(again.status, 401, "the user is gone");

    const list = await userTask("user:list", file.path, ["--json"]);
    assert.deepEqual(JSON.parse(list.stdout).map((u: { name: string }) => u.name), ["bob"]);
    assert.equal(bystander.ws.readyState, WebSocket.OPEN, "other users keep their sockets");
    await bystander.close();

    const unknown = await userTask("user:remove", file.path, ["dora"]);
    assert.equal(unknown.code, 1);
    assert.equal(unknown.stdout, "");
    assert.match(
      unknown.stderr,
      /^Cannot remove the user as there is no user "dora": deno task user:list shows who there is\n$/,
    );
    const none = await userTask("user:remove", file.path, []);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /Cannot remove the user as exactly one NAME is needed/);
  } finally {
    server.child.kill("SIGTERM");
    await server.status;
  }
});
