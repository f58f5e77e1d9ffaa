/**
 * `deno task probe URL [--token T | --login USER] [options]`: connects step by
 * step (DNS, TCP, TLS, the upgrade, auth, the first stats, then holds the
 * socket quiet to see a proxy's idle cut) and names the cause of each
 * failure in one sentence. Exit code: 0 when the
 * path through to stats works (with --scenarios: when every case that ran
 * matched), 1 otherwise, 2 for bad usage.
 */
import { readPassword } from "../lib/cli/password_input.ts";
import { parseArgs } from "node:util";
import {
  loginStep,
  logoutRequest,
  parseTarget,
  probe,
  ProbeUsageError,
  type Step,
  type Target,
} from "../probe/mod.ts";
import { redactUrl } from "../probe/explain.ts";
import { runScenarios, type ScenarioRow } from "../probe/scenarios.ts";
import { jwtSecretKey } from "../lib/store/keys.ts";

const USAGE = `usage: deno task probe URL [--token T | --login USER] [--origin O] [--header]
                        [--scenarios [--kv PATH]] [--wait-auth] [--hold S | --quick] [--timeout S]
  URL           ws://host:port/admin/ws, wss://..., or http(s)://host (then /admin/ws)
  --token T     an access token to authenticate with (never printed whole)
  --login USER  sign in with POST /auth/login; the password comes from LOOKOUT_PASSWORD or a prompt
  --origin O    send Origin: O with the upgrade
  --header      send the token as Authorization: Bearer on the upgrade, not in the first message
  --scenarios   run the valid, expired, invalid-signature, missing and revoked token cases;
                the expired token is forged with the server's secret: JWT_SECRET, or else the
                one kept in the server's KV file (--kv PATH, KV_PATH, data/lookout.sqlite3)
  --kv PATH     the server's KV file, to read the secret it generated (JWT_SECRET unset)
  --wait-auth   send no auth message and wait for the server to close with 4408 auth_timeout
  --hold S      after the first stats, hold the socket S seconds sending nothing, to see a
                proxy that cuts quiet sockets (default 75, past nginx's default 60 s)
  --quick       skip that hold
  --timeout S   seconds each step may take (default 10)
  --help, -h    this text`;

function usage(message: string): never {
  console.error(message);
  console.error(USAGE);
  Deno.exit(2);
}

const MARKS: Record<Step["result"], string> = { ok: "✓", fail: "✗", warn: "!", skip: "–" };
const LABELS: Record<Step["name"], string> = {
  dns: "DNS",
  tcp: "TCP",
  tls: "TLS",
  upgrade: "Upgrade",
  auth: "Auth",
  stats: "Stats",
  hold: "Hold",
  login: "Login",
};

function printStep(step: Step): void {
  console.log(`${MARKS[step.result]} ${LABELS[step.name].padEnd(9)}${step.summary}`);
  for (const line of step.details) console.log(`             ${line}`);
  if (step.cause) console.log(`  → ${step.cause}`);
}

function printTable(rows: ScenarioRow[]): void {
  const cells = rows.map((
    r,
  ) => [r.case, r.expected, r.seen, r.ok === null ? "–" : r.ok ? "✓" : "✗"]);
  const all = [["case", "expected", "seen", "ok"], ...cells];
  const widths = [0, 1, 2].map((i) => Math.max(...all.map((c) => c[i].length)));
  const line = (c: string[]) => c.map((v, i) => i < 3 ? v.padEnd(widths[i]) : v).join(" | ");
  console.log(line(all[0]));
  console.log(widths.map((w) => "-".repeat(w)).concat("--").join("-|-"));
  for (const c of cells) console.log(line(c));
  for (const r of rows) if (r.ok === false && r.cause) console.log(`  → ${r.case}: ${r.cause}`);
}

let parsed;
try {
  parsed = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: {
      token: { type: "string" },
      login: { type: "string" },
      origin: { type: "string" },
      header: { type: "boolean", default: false },
      scenarios: { type: "boolean", default: false },
      "wait-auth": { type: "boolean", default: false },
      timeout: { type: "string" },
      hold: { type: "string" },
      kv: { type: "string" },
      quick: { type: "boolean", default: false },
      help: { type: "boolean", short: "h" },
    },
  });
} catch (error) {
  usage(`Cannot probe: ${(error as Error).message}`);
}
const args = parsed.values;
if (args.help) {
  console.log(USAGE);
  Deno.exit(0);
}
if (parsed.positionals.length !== 1) {
  usage(`Cannot probe as exactly one URL is needed: current count is ${parsed.positionals.length}`);
}
let target: Target;
try {
  target = parseTarget(parsed.positionals[0]);
} catch (error) {
  if (error instanceof ProbeUsageError) usage(error.message);
  throw error;
}
if (args.token !== undefined && args.login !== undefined) {
  usage("Cannot probe as --token and --login exclude each other: pass one");
}
if (args.token === "") usage("Cannot probe as --token is empty");
const hasToken = args.token !== undefined || args.login !== undefined;
if (args.header && !hasToken) usage("Cannot probe as --header needs --token or --login");
if (args.scenarios && !hasToken) usage("Cannot probe as --scenarios needs --token or --login");
if (args.kv !== undefined && !args.scenarios) usage("Cannot probe as --kv needs --scenarios");
if (args.kv === "") usage("Cannot probe as --kv is empty");
if (args.kv !== undefined && !await Deno.stat(args.kv).then((i) => i.isFile, () => false)) {
  usage(`Cannot probe as --kv names no file: current value is ${JSON.stringify(args.kv)}`);
}
if (args["wait-auth"] && (hasToken || args.scenarios)) {
  usage("Cannot probe as --wait-auth sends no token: drop --token, --login and --scenarios");
}
// "null" is what browsers send from opaque origins (sandboxed frames, file://).
if (args.origin !== undefined && args.origin !== "null") {
  let origin: string | null = null;
  try {
    origin = new URL(args.origin).origin;
  } catch {
    // Reported below.
  }
  if (origin !== args.origin) {
    usage(
      `Cannot probe as --origin must be an origin like https://admin.example.com: current value is ${
        JSON.stringify(args.origin)
      }`,
    );
  }
}
const timeoutS = args.timeout === undefined ? 10 : Number(args.timeout);
if (!(timeoutS > 0 && timeoutS <= 600)) {
  usage(
    `Cannot probe as --timeout must be seconds from 0 to 600: current value is ${
      JSON.stringify(args.timeout)
    }`,
  );
}
const timeoutMs = timeoutS * 1000;
if (args.quick && args.hold !== undefined) {
  usage("Cannot probe as --quick and --hold exclude each other: pass one");
}
const holdS = args.quick ? 0 : args.hold === undefined ? 75 : Number(args.hold);
if (!(holdS >= 0 && holdS <= 600)) {
  usage(
    `Cannot probe as --hold must be seconds from 0 to 600: current value is ${
      JSON.stringify(args.hold)
    }`,
  );
}

console.log(`Probing ${redactUrl(target.url)}`);
let token = args.token;
let credentials: { username: string; password: string } | undefined;
let cookie: string | null = null;
if (args.login !== undefined) {
  credentials = {
    username: args.login,
    password: await readPassword({ prompt: `Password for ${args.login}: ` }) ?? "",
  };
  const login = await loginStep(target, credentials, { timeoutMs });
  printStep(login);
  if (!login.token) Deno.exit(1);
  token = login.token;
  cookie = login.cookie;
}

/**
 * The server's secret for forging the expired token: JWT_SECRET, or the one
 * the server generated and keeps in its KV file (as `deno task token`
 * reads it). Read only: the probe never creates a secret.
 */
async function scenarioSecret(): Promise<{ secret?: string; note?: string }> {
  const env = Deno.env.get("JWT_SECRET");
  if (env) return { secret: env };
  const path = args.kv ?? Deno.env.get("KV_PATH") ?? "data/lookout.sqlite3";
  if (!await Deno.stat(path).then((i) => i.isFile, () => false)) return {};
  const kv = await Deno.openKv(path);
  try {
    const stored = await kv.get<string>(jwtSecretKey());
    if (typeof stored.value === "string") {
      return {
        secret: stored.value,
        note: `the expired token is signed with the secret in ${path}`,
      };
    }
    return { note: `${path} holds no generated secret (the server uses JWT_SECRET)` };
  } finally {
    kv.close();
  }
}

/** Signs the probe's own session out, so no live session is left behind, and exits. */
async function exit(code: number): Promise<never> {
  if (cookie) await logoutRequest(target, cookie, { timeoutMs });
  Deno.exit(code);
}

const report = await probe(target, {
  token,
  origin: args.origin,
  header: args.header,
  waitAuth: args["wait-auth"],
  holdMs: holdS * 1000,
  timeoutMs,
  onStep: (step) => {
    printStep(step);
    if (step.name === "stats" && step.result === "ok" && holdS > 0) {
      console.log(
        `  … holding the socket ${holdS} s with nothing sent, to see a proxy's idle cut (--quick skips)`,
      );
    }
  },
});

if (args.scenarios) {
  if (!report.steps.some((s) => s.name === "upgrade" && s.result === "ok")) {
    console.log("✗ Scenarios not run: the upgrade itself fails (see above).");
    await exit(1);
  }
  console.log("");
  const { secret, note } = await scenarioSecret();
  if (note) console.log(`(${note})`);
  const rows = await runScenarios(target, {
    token: token!,
    secret,
    login: credentials,
    origin: args.origin,
    timeoutMs,
  });
  printTable(rows);
  const failed = rows.filter((r) => r.ok === false).length;
  const skipped = rows.filter((r) => r.ok === null).length;
  console.log(
    failed === 0
      ? `✓ Every case that ran matched (${rows.length - skipped} run, ${skipped} skipped).`
      : `✗ ${failed} of ${rows.length - skipped} cases did not match.`,
  );
  await exit(failed === 0 ? 0 : 1);
}

const failedStep = report.steps.find((s) => s.result === "fail");
if (report.ok) {
  console.log(
    args["wait-auth"]
      ? "✓ The server enforces its auth timeout."
      : `✓ The WebSocket works end to end: upgrade, auth and live stats${
        holdS > 0 ? `, and it stays open ${holdS} s when quiet` : ""
      }.`,
  );
} else if (failedStep) {
  console.log(`✗ Failed at ${LABELS[failedStep.name]}.`);
} else {
  console.log(
    "✗ Stopped after the upgrade: no token was given, so auth and stats were not checked.",
  );
}
await exit(report.ok ? 0 : 1);
