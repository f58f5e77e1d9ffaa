import assert from "node:assert/strict";
import { ConfigError, loadConfig } from "../lib/config.ts";
import { makeKey, pem } from "./idp_fixtures.ts";

function configError(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `not a ConfigError: ${error}`);
    return error.message;
  }
  assert.fail("loadConfig() accepted a bad value");
}

const good = {
  issuer: "https://idp.example.com/",
  audience: "lookout-api",
  jwksUrl: "https://idp.example.com/.well-known/jwks.json",
  algorithms: ["RS256"],
};

Deno.test("JWT_ISSUERS: a good entry is parsed with its defaults", () => {
  const config = loadConfig({ JWT_ISSUERS: JSON.stringify([good]) });
  assert.deepEqual(config.jwtIssuers, [{
    ...good,
    publicKey: null,
    roleClaim: "role",
    roles: null,
    userClaim: "sub",
  }]);
});

Deno.test("JWT_ISSUERS: plain http only on a loopback host", () => {
  for (const url of ["http://127.0.0.1:9/jwks", "http://localhost:9/jwks", "http://[::1]:9/k"]) {
    const config = loadConfig({ JWT_ISSUERS: JSON.stringify([{ ...good, jwksUrl: url }]) });
    assert.equal(config.jwtIssuers[0].jwksUrl, url);
  }
  assert.equal(
    configError({
      JWT_ISSUERS: JSON.stringify([good, {
        ...good,
        issuer: "b",
        jwksUrl: "http://example.com/jwks",
      }]),
    }),
    `Cannot start as JWT_ISSUERS[1].jwksUrl must be https (or http on a loopback host): current value is "http://example.com/jwks"`,
  );
  assert.match(
    configError({
      JWT_ISSUERS: JSON.stringify([{ ...good, jwksUrl: "http://127.0.0.1.example.com/jwks" }]),
    }),
    /^Cannot start as JWT_ISSUERS\[0\]\.jwksUrl must be https/,
  );
});

Deno.test("JWT_ISSUERS: one line per bad entry, each naming its index and field", () => {
  const message = configError({
    JWT_ISSUERS: JSON.stringify([
      { ...good, algorithms: ["HS256"] },
      good,
      { ...good, issuer: "c", algorithms: [] },
      { ...good, issuer: "d", audience: 5 },
    ]),
  });
  const lines = message.split("\n");
  assert.equal(lines.length, 3, message);
  assert.match(
    lines[0],
    /^Cannot start as JWT_ISSUERS\[0\]\.algorithms must each be one of RS256 /,
  );
  assert.match(lines[1], /^Cannot start as JWT_ISSUERS\[2\]\.algorithms must be a non-empty array/);
  assert.match(lines[2], /^Cannot start as JWT_ISSUERS\[3\]\.audience .*: current value is 5$/);
});

Deno.test("JWT_ISSUERS: hostile and wrong entries are refused clearly", async () => {
  const rsa = await pem(await makeKey("RS256", "r"));
  const cases: [unknown, RegExp][] = [
    [
      "not json",
      /^Cannot start as JWT_ISSUERS must be a JSON array of issuers: current value is "not json"$/,
    ],
    [{ issuer: "x" }, /^Cannot start as JWT_ISSUERS must be a JSON array/],
    [[null], /^Cannot start as JWT_ISSUERS\[0\] /],
    [
      [{ ...good, jwksUrl: undefined }],
      /JWT_ISSUERS\[0\]\.jwksUrl must be set, or publicKey, but not both/,
    ],
    [
      [{ ...good, publicKey: rsa }],
      /JWT_ISSUERS\[0\]\.jwksUrl must be set, or publicKey, but not both/,
    ],
    [[{ ...good, jwksUrl: "javascript:alert(1)" }], /JWT_ISSUERS\[0\]\.jwksUrl must be https/],
    [[{ ...good, jwksUrl: "file:///etc/passwd" }], /JWT_ISSUERS\[0\]\.jwksUrl must be https/],
    [[{ ...good, algorithms: ["none"] }], /JWT_ISSUERS\[0\]\.algorithms must each be one of/],
    [[{ ...good, issuer: "lookout" }], /JWT_ISSUERS\[0\]\.issuer must differ from JWT_ISSUER/],
    [[good, good], /JWT_ISSUERS\[1\]\.issuer must differ from JWT_ISSUER and from the other/],
    [
      [{ ...good, roleClaim: "a..b" }],
      /JWT_ISSUERS\[0\]\.roleClaim must be a claim name or a dotted path/,
    ],
    [[{ ...good, roles: { owner: ["x"] } }], /JWT_ISSUERS\[0\]\.roles /],
    [[{ ...good, jku: "https://evil" }], /JWT_ISSUERS\[0\] /],
    [
      [{ ...good, jwksUrl: undefined, publicKey: rsa, algorithms: ["ES256"] }],
      /JWT_ISSUERS\[0\]\.algorithms must suit the publicKey, which cannot verify ES256/,
    ],
  ];
  for (const [value, expected] of cases) {
    const message = configError({
      JWT_ISSUERS: typeof value === "string" ? value : JSON.stringify(value),
    });
    assert.match(message, expected, `for ${JSON.stringify(value).slice(0, 80)}`);
    assert.doesNotMatch(message, /[\r\n]/);
  }
});

Deno.test("JWT_ISSUERS: a bad PEM is named, never shown", () => {
  const secretish =
    "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----";
  const message = configError({
    JWT_ISSUERS: JSON.stringify([{ ...good, jwksUrl: undefined, publicKey: secretish }]),
  });
  assert.match(message, /^Cannot start as JWT_ISSUERS\[0\]\.publicKey must be a PEM public key/);
  assert.match(message, /current value has \d+ characters$/);
  assert.doesNotMatch(message, /MIIE/);
});

Deno.test("JWT_ISSUERS: a PEM key of each type is accepted for its algorithms", async () => {
  for (const alg of ["RS256", "ES256", "EdDSA"] as const) {
    const publicKey = await pem(await makeKey(alg, "k"));
    const config = loadConfig({
      JWT_ISSUERS: JSON.stringify([{ ...good, jwksUrl: undefined, publicKey, algorithms: [alg] }]),
    });
    assert.equal(config.jwtIssuers[0].publicKey, publicKey);
  }
});

Deno.test("JWT_SECRET_PREVIOUS must be 32 bytes, and is never shown", () => {
  const message = configError({ JWT_SECRET_PREVIOUS: "short-old-secret" });
  assert.equal(
    message,
    "Cannot start as JWT_SECRET_PREVIOUS must be at least 32 bytes of UTF-8: current value has 16 bytes",
  );
  const previous = "p".repeat(32);
  assert.equal(loadConfig({ JWT_SECRET_PREVIOUS: previous }).jwtSecretPrevious, previous);
});

Deno.test("main.ts exits non-zero with one stderr line per bad JWT_ISSUERS entry", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lookout_issuers_" });
  try {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL("../main.ts", import.meta.url).pathname],
      env: {
        PORT: "0",
        KV_PATH: `${dir}/kv.sqlite3`,
        NO_COLOR: "1",
        JWT_ISSUERS: JSON.stringify([
          { ...good, jwksUrl: "http://example.com/jwks" },
          good,
          { ...good, issuer: "other", algorithms: ["HS256"] },
        ]),
      },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(60_000),
    }).output();
    const stderr = new TextDecoder().decode(output.stderr);
    assert.equal(output.signal, null);
    assert.equal(output.code, 1);
    assert.deepEqual(stderr.split("\n").filter((l) => l.trim() !== ""), [
      `Cannot start as JWT_ISSUERS[0].jwksUrl must be https (or http on a loopback host): current value is "http://example.com/jwks"`,
      `Cannot start as JWT_ISSUERS[2].algorithms must each be one of RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 EdDSA: current value is ["HS256"]`,
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
