/**
 * loadConfig(): the defaults of CONTRACT section 1, and one clear line naming
 * the variable for every bad value, in-process and through `main.ts`.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { ConfigError, loadConfig } from "../lib/config.ts";
import { randomSecret } from "./helpers.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** Every variable of CONTRACT section 1, plus the one that marks Deno Deploy. */
const VARIABLES = [
  "PORT",
  "HOSTNAME",
  "KV_PATH",
  "JWT_SECRET",
  "JWT_ISSUER",
  "JWT_AUDIENCE",
  "ACCESS_TOKEN_TTL_S",
  "ALLOWED_ORIGINS",
  "ADMIN_USERNAME",
  "ADMIN_PASSWORD",
  "AUTH_TIMEOUT_MS",
  "MAX_MESSAGE_BYTES",
  "TRUST_PROXY",
  "ATTEMPT_RETENTION_DAYS",
  "SESSION_IDLE_TIMEOUT_S",
  "SESSION_MAX_AGE_S",
  "METRICS_MAX_SERIES",
  "METRICS_RETENTION_DAYS",
  "METRICS_PUSHES_PER_KEY_PER_10S",
  "LOG_LEVEL",
  "DENO_DEPLOYMENT_ID",
];

/** Random text of `count` characters that each take `bytes` bytes of UTF-8. */
function randomChars(count: number, bytes: 1 | 2 | 3): string {
  const [base, span] = bytes === 1 ? [0x41, 26] : bytes === 2 ? [0xc0, 0x3f] : [0x4e00, 0x1000];
  const picks = crypto.getRandomValues(new Uint16Array(count));
  return String.fromCharCode(...Array.from(picks, (n) => base + (n % span)));
}

function utf8Length(text: string): number {
  return new TextEncoder().encode(text).length;
}

/** Calls loadConfig(env), expecting a ConfigError; returns its message. */
function configError(env: Record<string, string | undefined>): string {
  try {
    loadConfig(env);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${error}`);
    return error.message;
  }
  assert.fail(`loadConfig(${JSON.stringify(Object.keys(env))}) did not throw`);
}

/** Asserts `message` is one non-empty line that names `variable`. */
function assertOneLineNaming(message: string, variable: string): void {
  assert.ok(message.trim().length > 0, "the message is empty");
  assert.doesNotMatch(message, /[\r\n]/, `the message is more than one line: ${message}`);
  assert.match(message, new RegExp(`\\b${variable}\\b`), `"${message}" does not name ${variable}`);
}

Deno.test("loadConfig() defaults match CONTRACT section 1", () => {
  assert.deepEqual(loadConfig({}), {
    port: 8000,
    hostname: "0.0.0.0",
    kvPath: "data/lookout.sqlite3",
    jwtSecret: undefined,
    jwtSecretPrevious: undefined,
    jwtIssuers: [],
    jwtIssuer: "lookout",
    jwtAudience: "lookout",
    accessTokenTtlS: 900,
    allowedOrigins: null,
    adminUsername: undefined,
    adminPassword: undefined,
    authTimeoutMs: 10_000,
    maxMessageBytes: 65_536,
    trustProxy: false,
    attemptRetentionDays: 30,
    sessionIdleTimeoutS: 1800,
    sessionMaxAgeS: 43_200,
    workers: navigator.hardwareConcurrency,
    onDeploy: false,
    metricsMaxSeries: 1000,
    metricsRetentionDays: 90,
    metricsPushesPerKeyPer10s: 300,
    logLevel: "info",
    logToConsole: false,
  });
});

Deno.test("loadConfig() counts empty strings as unset", () => {
  const empty = Object.fromEntries(VARIABLES.map((name) => [name, ""]));
  assert.deepEqual(loadConfig(empty), loadConfig({}));
  // An unset value passed as undefined is the same as a missing one.
  const undef = Object.fromEntries(VARIABLES.map((name) => [name, undefined]));
  assert.deepEqual(loadConfig(undef), loadConfig({}));
});

Deno.test("loadConfig() reads every variable when it is valid", () => {
  const secret = randomSecret();
  const password = randomSecret();
  const config = loadConfig({
    PORT: "8123",
    HOSTNAME: "127.0.0.1",
    KV_PATH: "data/other.sqlite3",
    JWT_SECRET: secret,
    JWT_ISSUER: "issuer-x",
    JWT_AUDIENCE: "audience-y",
    ACCESS_TOKEN_TTL_S: "120",
    ALLOWED_ORIGINS: "https://admin.example.com, http://localhost:8000",
    ADMIN_USERNAME: "root",
    ADMIN_PASSWORD: password,
    AUTH_TIMEOUT_MS: "2500",
    MAX_MESSAGE_BYTES: "1024",
    TRUST_PROXY: "true",
    ATTEMPT_RETENTION_DAYS: "7",
    SESSION_IDLE_TIMEOUT_S: "600",
    SESSION_MAX_AGE_S: "7200",
    LOOKOUT_WORKERS: "3",
    METRICS_MAX_SERIES: "50",
    METRICS_RETENTION_DAYS: "30",
    METRICS_PUSHES_PER_KEY_PER_10S: "100000",
    LOG_LEVEL: "Warning",
  });
  assert.deepEqual(config, {
    port: 8123,
    hostname: "127.0.0.1",
    kvPath: "data/other.sqlite3",
    jwtSecret: secret,
    jwtSecretPrevious: undefined,
    jwtIssuers: [],
    jwtIssuer: "issuer-x",
    jwtAudience: "audience-y",
    accessTokenTtlS: 120,
    allowedOrigins: ["https://admin.example.com", "http://localhost:8000"],
    adminUsername: "root",
    adminPassword: password,
    authTimeoutMs: 2500,
    maxMessageBytes: 1024,
    trustProxy: true,
    attemptRetentionDays: 7,
    sessionIdleTimeoutS: 600,
    sessionMaxAgeS: 7200,
    workers: 3,
    onDeploy: false,
    metricsMaxSeries: 50,
    metricsRetentionDays: 30,
    metricsPushesPerKeyPer10s: 100_000,
    logLevel: "warn",
    logToConsole: false,
  });
});

const BAD_VALUES: [variable: string, value: string][] = [
  ["PORT", "abc"],
  ["PORT", "70000"],
  ["PORT", "-1"],
  ["PORT", "80.5"],
  ["PORT", "1\n2"],
  ["ALLOWED_ORIGINS", "https://admin.example.com/dashboard"],
  ["ALLOWED_ORIGINS", "*"],
  ["ALLOWED_ORIGINS", "https://admin.example.com,*"],
  ["TRUST_PROXY", "maybe"],
  ["AUTH_TIMEOUT_MS", "-1"],
  ["MAX_MESSAGE_BYTES", "abc"],
  ["ATTEMPT_RETENTION_DAYS", "0"],
  ["ACCESS_TOKEN_TTL_S", "soon"],
  ["METRICS_MAX_SERIES", "0"],
  ["METRICS_MAX_SERIES", "many"],
  ["METRICS_RETENTION_DAYS", "0"],
  ["METRICS_RETENTION_DAYS", "3651"],
  ["METRICS_PUSHES_PER_KEY_PER_10S", "0"],
  ["METRICS_PUSHES_PER_KEY_PER_10S", "lots"],
  ["METRICS_PUSHES_PER_KEY_PER_10S", "1.5"],
  ["LOG_LEVEL", "verbose"],
  ["LOG_LEVEL", "trace"],
];

for (const [variable, value] of BAD_VALUES) {
  Deno.test("loadConfig() runs one worker for a :memory: store or port 0, whatever LOOKOUT_WORKERS says", () => {
    assert.equal(loadConfig({ KV_PATH: ":memory:", LOOKOUT_WORKERS: "4" }).workers, 1);
    assert.equal(loadConfig({ PORT: "0", LOOKOUT_WORKERS: "4" }).workers, 1);
    assert.equal(loadConfig({ LOOKOUT_WORKERS: "4" }).workers, 4);
  });

  Deno.test(
    `loadConfig() throws a one-line ConfigError naming ${variable} for ${JSON.stringify(value)}`,
    () => {
      const message = configError({ [variable]: value });
      assertOneLineNaming(message, variable);
    },
  );
}

Deno.test("loadConfig() sends log lines through the console on Deno Deploy and when OpenTelemetry collects it", () => {
  assert.equal(loadConfig({}).logToConsole, false);
  assert.equal(loadConfig({ OTEL_DENO: "true" }).logToConsole, true);
  assert.equal(loadConfig({ OTEL_DENO: "true", OTEL_DENO_CONSOLE: "capture" }).logToConsole, true);
  assert.equal(loadConfig({ OTEL_DENO: "true", OTEL_DENO_CONSOLE: "ignore" }).logToConsole, false);
  assert.equal(loadConfig({ OTEL_DENO: "false" }).logToConsole, false);
  assert.equal(
    loadConfig({ DENO_DEPLOYMENT_ID: "x1", JWT_SECRET: "s".repeat(32) }).logToConsole,
    true,
  );
});

Deno.test("loadConfig() reads LOG_LEVEL as debug, info, warning (or warn) or error, in any case", () => {
  assert.equal(loadConfig({ LOG_LEVEL: "debug" }).logLevel, "debug");
  assert.equal(loadConfig({ LOG_LEVEL: " INFO " }).logLevel, "info");
  assert.equal(loadConfig({ LOG_LEVEL: "warn" }).logLevel, "warn");
  assert.equal(loadConfig({ LOG_LEVEL: "error" }).logLevel, "error");
  assert.equal(
    configError({ LOG_LEVEL: "verbose" }),
    'Cannot start as LOG_LEVEL must be one of debug, info, warning, error: current value is "verbose"',
  );
});

Deno.test("loadConfig() refuses a JWT_SECRET of 31 bytes without showing it", () => {
  const secret = randomChars(31, 1);
  const message = configError({ JWT_SECRET: secret });
  assertOneLineNaming(message, "JWT_SECRET");
  assert.ok(!message.includes(secret), "the error shows the secret");
});

Deno.test("loadConfig() counts JWT_SECRET in UTF-8 bytes, not characters", () => {
  // 15 two-byte characters and one ASCII one: 16 characters, 31 bytes.
  const short = randomChars(15, 2) + randomChars(1, 1);
  assert.equal(utf8Length(short), 31);
  const message = configError({ JWT_SECRET: short });
  assertOneLineNaming(message, "JWT_SECRET");
  assert.ok(!message.includes(short), "the error shows the secret");
  for (let i = 0; i + 4 <= short.length; i++) {
    assert.ok(!message.includes(short.slice(i, i + 4)), "the error shows part of the secret");
  }

  // 16 two-byte characters: 16 characters, 32 bytes, accepted.
  const enough = randomChars(16, 2);
  assert.equal(utf8Length(enough), 32);
  assert.equal(loadConfig({ JWT_SECRET: enough }).jwtSecret, enough);

  // 11 three-byte characters: 33 bytes in only 11 characters, accepted.
  const cjk = randomChars(11, 3);
  assert.equal(utf8Length(cjk), 33);
  assert.equal(loadConfig({ JWT_SECRET: cjk }).jwtSecret, cjk);
});

Deno.test("loadConfig() never shows a bad ADMIN_PASSWORD in its error", () => {
  for (const password of [randomSecret().slice(0, 7), randomSecret().repeat(20).slice(0, 1025)]) {
    const message = configError({ ADMIN_USERNAME: "root", ADMIN_PASSWORD: password });
    assertOneLineNaming(message, "ADMIN_PASSWORD");
    assert.ok(!message.includes(password), "the error shows the password");
    assert.ok(!message.includes(password.slice(0, 6)), "the error shows part of the password");
  }
});

Deno.test("loadConfig() refuses ADMIN_USERNAME without ADMIN_PASSWORD", () => {
  assertOneLineNaming(configError({ ADMIN_USERNAME: "root" }), "ADMIN_PASSWORD");
});

Deno.test("loadConfig() refuses ADMIN_PASSWORD without ADMIN_USERNAME, without showing it", () => {
  const password = randomSecret();
  const message = configError({ ADMIN_PASSWORD: password });
  assertOneLineNaming(message, "ADMIN_USERNAME");
  assert.ok(!message.includes(password), "the error shows the password");
});

Deno.test("loadConfig() requires JWT_SECRET on Deno Deploy", () => {
  const message = configError({ DENO_DEPLOYMENT_ID: "abc123" });
  assertOneLineNaming(message, "JWT_SECRET");
});

Deno.test("loadConfig() ignores KV_PATH on Deno Deploy", () => {
  const config = loadConfig({
    DENO_DEPLOYMENT_ID: "abc123",
    JWT_SECRET: randomSecret(),
    KV_PATH: "/tmp/somewhere/lookout.sqlite3",
  });
  assert.equal(config.onDeploy, true);
  assert.equal(config.kvPath, undefined);
});

Deno.test("main.ts exits non-zero with one stderr line naming PORT for PORT=abc", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lookout_config_" });
  try {
    const kvPath = `${dir}/data/lookout.sqlite3`;
    const env: Record<string, string> = Object.fromEntries(VARIABLES.map((name) => [name, ""]));
    env.PORT = "abc";
    env.KV_PATH = kvPath;
    env.NO_COLOR = "1";
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "main.ts"],
      cwd: ROOT,
      env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      // A server that started anyway would never exit: fail instead of hanging.
      signal: AbortSignal.timeout(60_000),
    }).output();
    const stdout = new TextDecoder().decode(output.stdout);
    const stderr = new TextDecoder().decode(output.stderr);
    assert.equal(output.signal, null, `main.ts did not exit on its own; stdout: ${stdout}`);
    assert.notEqual(output.code, 0, "main.ts exited 0");
    const lines = stderr.split("\n").filter((line) => line.trim() !== "");
    assert.equal(lines.length, 1, `expected one stderr line, got: ${JSON.stringify(lines)}`);
    assertOneLineNaming(lines[0], "PORT");
    assert.doesNotMatch(stdout, /listening/, "main.ts logged that it was listening");
    assert.equal(stdout.trim(), "", "main.ts wrote to stdout");
    // It stopped before opening KV, let alone serving.
    await assert.rejects(Deno.stat(kvPath), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
