/**
 * The ingest benchmark (issue 11): points stored durably before the answer,
 * in batches of 500 over 100 series from 8 concurrent senders, against
 * InfluxDB 1.6 (`influxd`, its `/write` endpoint), against Lookout
 * (`POST /api/v2/write`, the same line-protocol bodies) and against the
 * ceiling of a bare script that commits the same KV sums
 * (bench/metrics_bare_kv.ts). While the senders run, one series is queried:
 * the last hour at 10 s and the last 30 days at 1 h. Then every target gets
 * 1,000 series and its RSS is read. One table, side by side, with Lookout's
 * ratios to the other two. With `--auth-churn N`, Lookout's authenticated
 * connect rate is measured too (bench/metrics_auth_churn.ts), before the
 * ingest and during its timed phase (issue 14, part 3). With
 * `--fanout-reference`, Lookout ingests three times: without watchers, with
 * them, and beside a raw server that sends the same watchers frames of the
 * same size at the same rate (the cost of the fanout alone, none of it in
 * Lookout's code).
 *
 *   deno run -A bench/metrics_ingest.ts [--seconds 20] [--only influx,lookout,bare] [--no-readme]
 *
 * The targets run one after the other, each alone; every subprocess is
 * stopped by its pid on the way out, also on failure and on Ctrl-C.
 */
import { SignJWT } from "jose";
import { commandOutput } from "./commit.ts";
import { readFlags } from "./flags.ts";
import { ensureNodeModules, freePort, REPO_ROOT, startServer, stoppable, tail } from "./launch.ts";
import type { AuthChurnConfig, AuthChurnFigures } from "./metrics_auth_churn.ts";
import type { BareConfig } from "./metrics_bare_kv.ts";
import { PREFIX, type WatchersConfig, type WatchersResult } from "./metrics_watchers.ts";
import {
  type Beside,
  type IngestTarget,
  type Latency,
  lineProtocol,
  type LoadShape,
  MEASUREMENT,
  measureTarget,
  seriesName,
  type TargetResult,
} from "./metrics_load.ts";
import { cpuMs } from "./proc.ts";
import { replaceBetweenMarkers } from "./report.ts";
import { randomText, sleep } from "./util.ts";

const USAGE = `usage: deno run -A bench/metrics_ingest.ts [options]

  --seconds S         timed ingest per target (20)
  --warmup-seconds S  unmeasured ingest first (3)
  --senders N         concurrent senders, each waiting for its batch's answer (8)
  --rate P            pace the senders to P points/s in all: each sender's batches at fixed
                      intervals (senders × batch / P s, staggered), one in flight at most; a
                      batch whose time came before the last one's answer goes at once and is
                      counted late (0: closed loop, each batch as soon as the last is answered)
  --batch N           points per batch (500)
  --series N          series the batches spread over (100)
  --rss-series N      series written before the last RSS reading (1000)
  --query-gap-ms T    pause between two rounds of the two queries (200)
  --only LIST         comma-separated: influx, lookout, bare, bare-group (all four)
  --lookout-root DIR  run Lookout from this checkout instead of this repository
  --profile DIR       run Lookout under --cpu-prof, writing the profile into DIR
  --watchers N        while Lookout ingests, N dashboard sockets subscribed to metrics are held
                      (bench/metrics_watchers.ts, a process of its own) (0)
  --auth-churn N      Lookout's auth rate: connect+auth+close, 64 at a time, for --seconds with
                      the watchers held and no ingest, then through the timed ingest phase;
                      N HS256 tokens are minted for each of the two, the most connects it may
                      count (bench/metrics_auth_churn.ts, a process of its own) (0: not measured)
  --fanout-reference  with --watchers: Lookout ingests (a) without watchers, (b) with them, (c) with
                      none of its own while the same number of watchers get, from a raw Deno
                      server (bench/servers/raw_deno.ts), frames of the size and at the rate
                      Lookout sent in (b); each on a fresh Lookout, side by side (not with --auth-churn)
  --no-readme         do not write the table into bench/README.md
  --json FILE         also write every figure as JSON to FILE`;

type Name = "influx" | "lookout" | "bare" | "bare-group";
const NAMES: Name[] = ["influx", "lookout", "bare", "bare-group"];
const TITLES: Record<Name, string> = {
  influx: "InfluxDB 1.6",
  lookout: "Lookout",
  bare: "bare KV ceiling",
  "bare-group": "bare KV, group commit",
};
const README = new URL("./README.md", import.meta.url);
const MARKERS = {
  start: "<!-- bench:metrics-ingest:start -->",
  end: "<!-- bench:metrics-ingest:end -->",
};
/**
 * Lookout's goals (issue 11): its points per second against each of the
 * others. The ceiling of the goal is the bare script that commits each batch
 * on its own; its group-commit variant is shown beside it, without a goal.
 */
const GOALS: Partial<Record<Name, number>> = { influx: 0.5, bare: 0.7 };
/**
 * Lookout's METRICS_PUSHES_PER_KEY_PER_10S for the run: a million pushes per
 * 10 s is 50 million points/s per key at 500 points, far past any sender here.
 */
const PUSHES_PER_KEY_PER_10S = 1_000_000;

interface Options {
  shape: LoadShape;
  only: Name[];
  /** The checkout Lookout runs from, ending in `/`. */
  lookoutRoot: string;
  profile: string | null;
  watchers: number;
  /** Tokens minted for each measured auth churn phase; 0 for no churn. */
  authChurn: number;
  /** Lookout without watchers, with them and beside the raw fanout reference. */
  fanoutReference: boolean;
  readme: boolean;
  json: string | null;
}

/** Reads the command line. */
function readOptions(args: string[]): Options {
  const flags = readFlags(args, {
    seconds: { type: "string" },
    "warmup-seconds": { type: "string" },
    senders: { type: "string" },
    rate: { type: "string" },
    batch: { type: "string" },
    series: { type: "string" },
    "rss-series": { type: "string" },
    "query-gap-ms": { type: "string" },
    only: { type: "string" },
    "lookout-root": { type: "string" },
    profile: { type: "string" },
    watchers: { type: "string" },
    "auth-churn": { type: "string" },
    "fanout-reference": { type: "boolean", default: false },
    "no-readme": { type: "boolean", default: false },
    json: { type: "string" },
  }, { usage: USAGE, doing: "run the ingest benchmark" });
  const { values, fail } = flags;
  const count = (
    name: Parameters<typeof flags.number>[0],
    fallback: number,
    min: number,
    max?: number,
  ) => flags.number(name, fallback, { min, max, integer: true });
  const only = (values.only ?? NAMES.join(",")).split(",").map((s) => s.trim()).filter(Boolean);
  for (const name of only) {
    if (!NAMES.includes(name as Name)) {
      fail(
        `Cannot run the ingest benchmark as --only must list influx, lookout, bare or bare-group: current value is ${
          JSON.stringify(name)
        }`,
      );
    }
  }
  const series = count("series", 100, 1, 10_000);
  const authChurn = count("auth-churn", 0, 0, 1_000_000);
  if (authChurn > 0 && !only.includes("lookout")) {
    fail(
      `Cannot run the ingest benchmark as --auth-churn measures Lookout, so --only must list lookout: current value is ${
        JSON.stringify(values.only)
      }`,
    );
  }
  const watchers = count("watchers", 0, 0, 20_000);
  const fanoutReference = values["fanout-reference"] === true;
  if (fanoutReference && watchers === 0) {
    fail(
      "Cannot run the ingest benchmark as --fanout-reference copies the fanout to Lookout's watchers, so --watchers must be at least 1: current value is 0",
    );
  }
  if (fanoutReference && !only.includes("lookout")) {
    fail(
      `Cannot run the ingest benchmark as --fanout-reference measures Lookout, so --only must list lookout: current value is ${
        JSON.stringify(values.only)
      }`,
    );
  }
  if (fanoutReference && authChurn > 0) {
    fail(
      `Cannot run the ingest benchmark as --fanout-reference runs without the auth churn, so --auth-churn must be 0: current value is ${authChurn}`,
    );
  }
  return {
    shape: {
      seconds: count("seconds", 20, 1),
      warmupSeconds: count("warmup-seconds", 3, 0),
      senders: count("senders", 8, 1, 64),
      // Lookout takes at most 5,000 points a request (CONTRACT 7.2).
      batchSize: count("batch", 500, 1, 5000),
      seriesCount: series,
      // Lookout keeps at most METRICS_MAX_SERIES (1,000 by default).
      rssSeries: count("rss-series", 1000, series, 10_000),
      queryGapMs: count("query-gap-ms", 200, 0),
      rate: count("rate", 0, 0, 10_000_000),
    },
    only: NAMES.filter((n) => only.includes(n)),
    lookoutRoot: lookoutRoot(values["lookout-root"], fail),
    profile: values.profile ?? null,
    watchers,
    authChurn,
    fanoutReference,
    readme: !values["no-readme"],
    json: values.json ?? null,
  };
}

/** `--lookout-root`, checked: a folder with Lookout's main.ts and deno.json. */
function lookoutRoot(dir: string | undefined, fail: (message: string) => never): string {
  if (dir === undefined) return REPO_ROOT;
  const root = dir.endsWith("/") ? dir : `${dir}/`;
  for (const file of ["main.ts", "deno.json"]) {
    try {
      Deno.statSync(`${root}${file}`);
    } catch {
      fail(
        `Cannot run the ingest benchmark as --lookout-root must hold Lookout's ${file}: current value is ${
          JSON.stringify(dir)
        }`,
      );
    }
  }
  return root;
}

/** Subprocesses and folders still to clean up, on any way out. */
const running = new Set<{ stop: () => Promise<void> }>();
const folders = new Set<string>();

async function cleanUp(): Promise<void> {
  await Promise.all([...running].map((p) => p.stop().catch(() => {})));
  running.clear();
  for (const dir of folders) await Deno.remove(dir, { recursive: true }).catch(() => {});
  folders.clear();
}

async function tempDir(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "lookout-ingest-bench-" });
  folders.add(dir);
  return dir;
}

/** Throws with the status and the start of the body unless `res` has status `ok`. */
async function expectStatus(res: Response, ok: number, doing: string): Promise<string> {
  const text = await res.text();
  if (res.status !== ok) {
    throw new Error(`Cannot ${doing} as the answer is ${res.status}: ${text.slice(0, 200)}`);
  }
  return text;
}

// ---------------------------------------------------------------------------
// InfluxDB 1.6

/**
 * influxd's configuration: loopback only, no reporting, everything in `dir`,
 * and `wal-fsync-delay = "0s"`, so each write is fsynced before its answer,
 * durable like a KV commit.
 */
function influxConfig(dir: string, httpPort: number, rpcPort: number): string {
  return `reporting-enabled = false
bind-address = "127.0.0.1:${rpcPort}"

[meta]
  dir = "${dir}/meta"
  logging-enabled = false

[data]
  dir = "${dir}/data"
  wal-dir = "${dir}/wal"
  wal-fsync-delay = "0s"
  index-version = "inmem"
  query-log-enabled = false

[monitor]
  store-enabled = false

[continuous_queries]
  enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:${httpPort}"
  log-enabled = false
  pprof-enabled = false

[logging]
  level = "warn"
  suppress-logo = true
`;
}

/** Starts influxd on free loopback ports and creates the database `bench`. */
async function startInflux(): Promise<
  { target: IngestTarget; stop: () => Promise<void>; notes: string[] }
> {
  const dir = await tempDir();
  const httpPort = freePort();
  const config = `${dir}/influxdb.conf`;
  await Deno.writeTextFile(config, influxConfig(dir, httpPort, freePort()));
  const child = new Deno.Command("influxd", {
    args: ["run", "-config", config],
    cwd: dir,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output = tail(child.stderr);
  tail(child.stdout);
  const { exited, stop: stopChild } = stoppable(child);
  const handle = { stop: () => stopChild(10_000) };
  running.add(handle);
  const base = `http://127.0.0.1:${httpPort}`;
  const deadline = Date.now() + 30_000;
  while (true) {
    if (exited()) throw new Error(`Cannot start influxd as it exited:\n${output()}`);
    const ready = await fetch(`${base}/ping`).then(async (res) => {
      await res.body?.cancel();
      return res.status === 204;
    }).catch(() => false);
    if (ready) break;
    if (Date.now() > deadline) throw new Error(`Cannot start influxd in 30 s:\n${output()}`);
    await sleep(100);
  }
  await expectStatus(
    await fetch(`${base}/query?q=${encodeURIComponent("CREATE DATABASE bench")}`, {
      method: "POST",
    }),
    200,
    "create InfluxDB's database",
  );
  const query = (span: string, step: string) => async () => {
    const q = `SELECT sum("v"), count("v") FROM "${MEASUREMENT}" WHERE "series"='${
      seriesName(1)
    }' AND time >= now() - ${span} GROUP BY time(${step})`;
    const res = await fetch(`${base}/query?db=bench&q=${encodeURIComponent(q)}`);
    const body = JSON.parse(await expectStatus(res, 200, "query InfluxDB"));
    if (body.results?.[0]?.error) throw new Error(`InfluxDB query: ${body.results[0].error}`);
    if (!body.results?.[0]?.series?.length) throw new Error("InfluxDB query: no series");
  };
  return {
    target: {
      pid: child.pid,
      send: async (batch) => {
        const res = await fetch(`${base}/write?db=bench&precision=ns`, {
          method: "POST",
          body: lineProtocol(batch),
        });
        await expectStatus(res, 204, "write to InfluxDB");
      },
      queries: { hour10s: query("1h", "10s"), month1h: query("30d", "1h") },
      storedSum: async () => {
        const q = `SELECT sum("v") FROM "${MEASUREMENT}"`;
        const res = await fetch(`${base}/query?db=bench&q=${encodeURIComponent(q)}`);
        const body = JSON.parse(await expectStatus(res, 200, "query InfluxDB"));
        return Number(body.results?.[0]?.series?.[0]?.values?.[0]?.[1] ?? NaN);
      },
    },
    stop: async () => {
      await handle.stop();
      running.delete(handle);
    },
    notes: [],
  };
}

// ---------------------------------------------------------------------------
// Lookout

/**
 * `deno task key:add` prints a key when the task exists (issue 11); null
 * before. `root` is the checkout Lookout runs from.
 */
async function ingestKey(root: string, kvPath: string, name: string): Promise<string | null> {
  const tasks = JSON.parse(await Deno.readTextFile(`${root}deno.json`)).tasks ?? {};
  if (!tasks["key:add"]) return null;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", "-q", "key:add", name, "--scope", "ingest"],
    cwd: root,
    env: { KV_PATH: kvPath, NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  const key = /lk_[A-Za-z0-9_-]{32,}/.exec(text)?.[0];
  if (!out.success || !key) {
    throw new Error(
      `Cannot create an ingest key with deno task key:add: ${
        new TextDecoder().decode(out.stderr).trim() || "no key in its output"
      }`,
    );
  }
  return key;
}

/**
 * Starts Lookout (launch.ts's one Lookout command, one instance) on a fresh
 * KV file, from `root`. Each sender has an ingest key of its own, as separate
 * services would: Lookout limits pushes per key. Null when its ingest
 * endpoint does not exist yet.
 */
async function startLookout(root: string, senders: number, profile: string | null): Promise<
  {
    target: IngestTarget;
    stop: () => Promise<void>;
    notes: string[];
    watch: (count: number) => Promise<Watchers>;
    churn: (config: Pick<AuthChurnConfig, "phases" | "loadPids">) => Promise<AuthChurn>;
  } | null
> {
  const dir = await tempDir();
  const kvPath = `${dir}/lookout.sqlite3`;
  const secrets = {
    secret: randomText(),
    issuer: "lookout",
    audience: "lookout",
    admin: { username: "unused", password: randomText(18) },
  };
  const keys: string[] = [];
  for (let i = 0; i < senders; i++) {
    const key = await ingestKey(root, kvPath, `bench-ingest-${i}`);
    if (key === null) break;
    keys.push(key);
  }
  const lookoutFlags = profile
    ? ["--cpu-prof", `--cpu-prof-dir=${await Deno.realPath(profile)}`]
    : [];
  // The per-key push limit is set far past what eight senders can push, so
  // the run measures ingest and not the limit (a checkout older than the
  // variable ignores it).
  const server = await startServer("lookout", secrets, {
    kvPath,
    lookoutFlags,
    cwd: root,
    lookoutEnv: { METRICS_PUSHES_PER_KEY_PER_10S: String(PUSHES_PER_KEY_PER_10S) },
  });
  running.add(server);
  const stop = async () => {
    await server.stop();
    running.delete(server);
  };
  const iat = Math.floor(Date.now() / 1000);
  const token = await new SignJWT({ role: "admin" })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject("bench").setIssuer(secrets.issuer).setAudience(secrets.audience)
    .setIssuedAt(iat).setExpirationTime(iat + 3600).setJti(crypto.randomUUID())
    .sign(new TextEncoder().encode(secrets.secret));
  const notes: string[] = [];
  // CONTRACT 7.2 also takes an admin access token: used only until key:add exists.
  const ingestAuth = (sender: number) =>
    keys.length ? `Token ${keys[sender % keys.length]}` : `Bearer ${token}`;
  if (!keys.length) notes.push("no `deno task key:add` yet, ingest with an admin access token");
  const write = (body: string, sender: number) =>
    fetch(`${server.base}/api/v2/write?precision=ns`, {
      method: "POST",
      headers: { authorization: ingestAuth(sender), "content-type": "text/plain; charset=utf-8" },
      body,
    });
  const probe = await write(`${MEASUREMENT},series=${seriesName(0)} v=1i`, 0);
  await probe.body?.cancel();
  if (probe.status === 404 || probe.status === 405) {
    await stop();
    return null;
  }
  const queryUrl = (step: string, spanMs: number) => {
    const to = Date.now();
    return `${server.base}/api/v1/metrics/query?name=${MEASUREMENT}.v&label.series=${
      seriesName(1)
    }&step=${step}&from=${to - spanMs}&to=${to}`;
  };
  const query = (step: string, spanMs: number) => async () => {
    const res = await fetch(queryUrl(step, spanMs), {
      headers: { authorization: `Bearer ${token}` },
    });
    const body = JSON.parse(await expectStatus(res, 200, "query Lookout"));
    if (!body.series?.length) throw new Error("Lookout query: no series");
  };
  const canQuery = !(await routeMissing(server.base, token));
  if (!canQuery) notes.push("Lookout: query endpoint not available (queries skipped)");
  return {
    target: {
      pid: server.pid,
      send: async (batch) => {
        const res = await write(lineProtocol(batch), batch.sender);
        await expectStatus(res, 204, "write to Lookout");
      },
      queries: canQuery
        ? { hour10s: query("10s", 3_600_000), month1h: query("1h", 30 * 86_400_000) }
        : null,
      // A counter's `last` is its total (CONTRACT 7.3); less the probe's 1 above.
      storedSum: async () => {
        if (!canQuery) return NaN;
        const res = await fetch(`${server.base}/api/v1/metrics`, {
          headers: { authorization: `Bearer ${token}` },
        });
        const body = JSON.parse(await expectStatus(res, 200, "list Lookout's series"));
        const series = (body.series ?? []) as { name: string; last: number }[];
        return series.filter((s) => s.name === `${MEASUREMENT}.v`)
          .reduce((total, s) => total + s.last, 0) - 1;
      },
    },
    stop,
    notes,
    watch: (count) => startWatchers({ ...secrets, base: server.base, count, concurrency: 64 }),
    churn: (config) =>
      startAuthChurn({
        ...config,
        base: server.base,
        pid: server.pid,
        secret: secrets.secret,
        issuer: secrets.issuer,
        audience: secrets.audience,
        concurrency: 64,
        timeoutMs: 10_000,
      }),
  };
}

/**
 * A helper process of the benchmark that talks in lines: its config as JSON
 * in the environment variable `envName`, commands on its stdin, one JSON line
 * per answer on its stdout. Registered for clean-up until `done`.
 */
function startHelper(script: string, envName: string, config: unknown) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script],
    cwd: REPO_ROOT,
    env: { [envName]: JSON.stringify(config), NO_COLOR: "1" },
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const handle = stoppable(child);
  const stopper = { stop: () => handle.stop(2000) };
  running.add(stopper);
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const input = child.stdin.getWriter();
  let buffer = "";
  return {
    pid: child.pid,
    /** The next line it prints; throws, naming `what`, when it exited first. */
    nextLine: async (what: string): Promise<string> => {
      while (!buffer.includes("\n")) {
        const { done, value } = await lines.read();
        if (done) throw new Error(`Cannot ${what}: ${script} exited`);
        buffer += value;
      }
      const at = buffer.indexOf("\n");
      const line = buffer.slice(0, at);
      buffer = buffer.slice(at + 1);
      return line;
    },
    send: (line: string) => input.write(new TextEncoder().encode(`${line}\n`)),
    /** Closes its stdin, which ends it, and waits for its exit. */
    done: async () => {
      await input.close();
      await handle.status;
      running.delete(stopper);
    },
  };
}

/** A started Lookout, with its watchers and its auth churn. */
type LookoutServer = NonNullable<Awaited<ReturnType<typeof startLookout>>>;

/**
 * The held dashboard sockets: the process's id, `mark` for the start and the
 * stop of the timed phase, and the function that ends it and reads its figures.
 */
interface Watchers {
  pid: number;
  mark: (line: "start" | "stop") => Promise<void>;
  end: () => Promise<WatchersResult>;
}

/**
 * Starts bench/metrics_watchers.ts and waits until its sockets are held;
 * resolves with its pid and the function that ends it and reads its figures.
 */
async function startWatchers(config: WatchersConfig): Promise<Watchers> {
  const helper = startHelper("bench/metrics_watchers.ts", "BENCH_WATCHERS", config);
  const ready = JSON.parse(await helper.nextLine("hold the dashboard sockets"));
  if (ready.ready < config.count) {
    console.error(`[watchers] ${ready.ready} of ${config.count} sockets held`);
  }
  return {
    pid: helper.pid,
    mark: (line) => helper.send(line),
    end: async () => {
      // Closing its stdin asks for its figures: read them before it is gone.
      const closed = helper.done();
      const result: WatchersResult = JSON.parse(
        await helper.nextLine("read the dashboard sockets' figures"),
      );
      await closed;
      return result;
    },
  };
}

/** The auth churn's process: `start(label)` begins a phase, `stop()` ends it and reads its figures. */
interface AuthChurn {
  start: (label: string) => Promise<void>;
  stop: () => Promise<AuthChurnFigures>;
  done: () => Promise<void>;
}

/**
 * Starts bench/metrics_auth_churn.ts and waits until it has minted its
 * tokens. The same churn code runs every phase; only what Lookout is doing
 * meanwhile differs.
 */
async function startAuthChurn(config: AuthChurnConfig): Promise<AuthChurn> {
  const helper = startHelper("bench/metrics_auth_churn.ts", "BENCH_AUTH_CHURN", config);
  await helper.nextLine("mint the auth churn's tokens");
  return {
    start: (label) => helper.send(`start ${label}`),
    stop: async () => {
      await helper.send("stop");
      return JSON.parse(await helper.nextLine("read the auth churn's figures"));
    },
    done: helper.done,
  };
}

/**
 * True when Lookout has no metrics reading yet: `/api/v1/metrics` is not a
 * route (a query's own 404, for an unknown name, would not say that).
 */
async function routeMissing(base: string, token: string): Promise<boolean> {
  const res = await fetch(`${base}/api/v1/metrics`, {
    headers: { authorization: `Bearer ${token}` },
  });
  await res.body?.cancel();
  return res.status === 404;
}

// ---------------------------------------------------------------------------
// Lookout's auth rate, without and with ingest (issue 14, part 3)

/** Issue 14: a busy deployment must not slow its auth rate "by more than a third". */
const AUTH_GOAL = 2 / 3;
/** Tokens of the unmeasured churn before (a), at most. */
const AUTH_WARMUP_TOKENS = 2000;

/** The auth churn's two measured phases. */
interface AuthResult {
  /** Dashboard sockets held through both. */
  watchers: number;
  /** (a): no ingest, for `--seconds`. */
  baseline: AuthChurnFigures;
  /** (b): through the timed ingest phase; null until it ran. */
  withIngest: AuthChurnFigures | null;
}

/**
 * Starts the auth churn beside Lookout (its watchers already held), runs an
 * unmeasured warm-up for `--warmup-seconds`, then (a), the churn without
 * ingest for `--seconds`. Resolves with (a) and the churn, ready for (b).
 */
async function authBaseline(
  lookout: LookoutServer,
  options: Options,
  shape: LoadShape,
  watchers: Watchers | null,
  log: (line: string) => void,
): Promise<{ churn: AuthChurn; auth: AuthResult }> {
  const tokens = options.authChurn;
  const phases = [{ label: "a", tokens }, { label: "b", tokens }];
  if (shape.warmupSeconds > 0) {
    phases.unshift({ label: "warmup", tokens: Math.min(tokens, AUTH_WARMUP_TOKENS) });
  }
  log(`auth churn: minting ${phases.reduce((n, p) => n + p.tokens, 0)} tokens`);
  // The runner (senders, queries) and the watchers are the benchmark's own
  // load: the churn counts them apart from the other processes' noise.
  const churn = await lookout.churn({
    phases,
    loadPids: [Deno.pid, ...(watchers ? [watchers.pid] : [])],
  });
  const timed = async (label: string, seconds: number) => {
    await churn.start(label);
    await sleep(seconds * 1000);
    return await churn.stop();
  };
  if (shape.warmupSeconds > 0) {
    log(`auth churn warm-up: ${churnSummary(await timed("warmup", shape.warmupSeconds))}`);
    await sleep(1000);
  }
  const baseline = await timed("a", shape.seconds);
  log(`auth churn without ingest: ${churnSummary(baseline)}`);
  return { churn, auth: { watchers: options.watchers, baseline, withIngest: null } };
}

const pct = (share: number) => `${(100 * share).toFixed(0)}%`;

function churnSummary(f: AuthChurnFigures): string {
  return `${f.ok} ok, ${f.failed} failed, ${f.perSecond.toFixed(0)}/s, p50 ${
    f.p50.toFixed(1)
  } ms, p99 ${f.p99.toFixed(1)} ms, Lookout CPU per connect ${
    f.serverCpuMsPerConnect.toFixed(3)
  } ms, other processes ${pct(f.otherShare)} of a core, machine idle ${pct(f.idleShare)}` +
    (f.ranOut ? ", ran out of tokens" : "") +
    (f.failed ? ` ${JSON.stringify(f.failures)}` : "");
}

/** The auth rate without and with ingest, side by side, and its ratio against the goal. */
function authReport(auth: AuthResult, watchers: number): string {
  const held = watchers ? `${watchers.toLocaleString("en-US")} sockets held` : "no sockets held";
  const phases: [string, AuthChurnFigures | null][] = [
    [`(a) ${held}, no ingest`, auth.baseline],
    [`(b) ${held}, ingest running (the timed phase)`, auth.withIngest],
  ];
  const rows: [string, (f: AuthChurnFigures) => string][] = [
    ["authenticated connects/s", (f) => Math.round(f.perSecond).toLocaleString("en-US")],
    ["connects ok (failed)", (f) => `${f.ok.toLocaleString("en-US")} (${f.failed})`],
    ["phase length (s)", (f) => (f.wallMs / 1000).toFixed(1)],
    ["connect+auth p50 / p99 (ms)", (f) => `${ms(f.p50)} / ${ms(f.p99)}`],
    [
      "Lookout CPU per connect (ms; in (b) ingest's CPU too)",
      (f) => f.serverCpuMsPerConnect.toFixed(3),
    ],
    ["other processes (% of a core)", (f) => pct(f.otherShare)],
    [
      `machine idle (% of the ${navigator.hardwareConcurrency} cores)`,
      (f) => pct(f.idleShare),
    ],
    ["tokens ran out before the phase ended", (f) => f.ranOut ? "YES" : "no"],
  ];
  const head = `| auth churn, 64 at a time | ${phases.map(([t]) => t).join(" | ")} |\n| --- | ${
    phases.map(() => "---:").join(" | ")
  } |`;
  const body = rows.map(([label, cell]) =>
    `| ${label} | ${phases.map(([, f]) => f ? cell(f) : "not run").join(" | ")} |`
  ).join("\n");
  const lines: string[] = [];
  if (auth.withIngest) {
    const ratio = auth.withIngest.perSecond / auth.baseline.perSecond;
    lines.push(
      `- Lookout's auth rate with ingest ÷ without (${held} both times): **${
        ratio.toFixed(2)
      }x** ` +
        `(goal at least 2/3, "not slow down by more than a third"): ${
          ratio >= AUTH_GOAL ? "met" : "MISSED"
        }`,
    );
  } else lines.push("- the auth churn with ingest did not run: no ratio");
  for (const [title, f] of phases) {
    if (f?.ranOut) {
      lines.push(
        `- ${title}: its tokens ran out before the phase ended; its rate is over the connects made (raise --auth-churn)`,
      );
    }
    if (f?.failed) lines.push(`- ${title}: failures ${JSON.stringify(f.failures)}`);
  }
  return `${head}\n${body}\n\n${lines.join("\n")}`;
}

// ---------------------------------------------------------------------------
// The fanout reference (issue 14, part 3)

/** Issue 14: a watched deployment must not slow down its ingest "by more than a third". */
const WATCHED_GOAL = 2 / 3;

/** A Lookout measurement of `--fanout-reference`: its figures, and what watchers got meanwhile. */
interface WatchedPhase {
  result: TargetResult;
  /** The watchers' figures, less the sample frame; null without watchers. */
  watchers: Omit<WatchersResult, "sample"> | null;
  /** CPU of the watchers' process over the timed phase (ms); NaN without watchers. */
  watchersCpuMs: number;
}

/** The three measurements of `--fanout-reference`, each on a fresh Lookout. */
interface FanoutResult {
  watchers: number;
  /** (a) Lookout ingesting, no watchers anywhere. */
  alone: WatchedPhase;
  /** (b) Lookout ingesting, its own watchers subscribed to `metrics`. */
  watched: WatchedPhase;
  /** (c) Lookout ingesting with no watchers; as many watchers fed by the raw server. */
  reference: WatchedPhase & {
    /** The raw server's CPU over the timed phase (ms). */
    rawCpuMs: number;
    /** Broadcasts answered in the timed phase, and the sockets they reached by the raw server's count. */
    broadcasts: number;
    sent: number;
    /** The body of each broadcast (characters), and the time between two (ms). */
    bodyChars: number;
    gapMs: number;
  };
}

/** Runs `a` and `b` beside the timed phase: started in turn, stopped in reverse. */
function both(a?: Beside, b?: Beside): Beside | undefined {
  if (!a || !b) return a ?? b;
  return {
    start: async () => {
      await a.start();
      await b.start();
    },
    stop: async () => {
      await b.stop();
      await a.stop();
    },
  };
}

/** Marks the watchers' timed phase and reads their process's CPU over it into `cpu.ms`. */
function watchersBeside(watchers: Watchers, cpu: { ms: number }): Beside {
  let cpu0 = 0;
  return {
    start: async () => {
      cpu0 = await cpuMs(watchers.pid);
      await watchers.mark("start");
    },
    stop: async () => {
      await watchers.mark("stop");
      cpu.ms = (await cpuMs(watchers.pid)) - cpu0;
    },
  };
}

/**
 * A `metrics_update` of `chars` characters for any 13-digit `at`: the points
 * of `sample` (a frame Lookout sent), repeated until one more would not fit,
 * then a `pad` string to the exact size. Built once; only `at` changes.
 */
function referenceBody(sample: string, chars: number): (at: number) => string {
  const points: unknown[] = JSON.parse(sample)?.data?.points ?? [];
  const head = `${PREFIX}${Date.now()},"points":[`;
  const padOpen = '],"pad":"';
  const close = '"}}';
  const parts: string[] = [];
  let length = head.length + padOpen.length + close.length;
  for (let i = 0; i < points.length * 10_000; i++) {
    const part = JSON.stringify(points[i % points.length]);
    const add = part.length + (parts.length ? 1 : 0);
    if (length + add > chars) break;
    parts.push(part);
    length += add;
  }
  const rest = `${parts.join(",")}${padOpen}${"x".repeat(Math.max(0, chars - length))}${close}`;
  return (at) => `${PREFIX}${at},"points":[${rest}`;
}

/**
 * POSTs `/broadcast` to the raw server at `base` every `gapMs` (on a fixed
 * schedule, so a late timer does not lower the rate), the first half a gap
 * after the start; `stop` waits for the broadcasts in flight.
 */
function broadcaster(base: string, body: (at: number) => string, gapMs: number) {
  const started = performance.now();
  const at0 = Date.now();
  const inFlight = new Set<Promise<void>>();
  const figures = { broadcasts: 0, sent: 0, failures: [] as string[] };
  let k = 0;
  let stopped = false;
  const tick = () => {
    if (stopped) return;
    const done: Promise<void> = fetch(`${base}/broadcast`, { method: "POST", body: body(at0 + k) })
      .then(async (res) => {
        const answer = JSON.parse(await expectStatus(res, 200, "broadcast from the raw server"));
        figures.broadcasts++;
        figures.sent += answer.sent;
      })
      .catch((error) => {
        figures.failures.push((error as Error).message);
      })
      .finally(() => inFlight.delete(done));
    inFlight.add(done);
    k++;
    timer = setTimeout(tick, Math.max(0, started + (k + 0.5) * gapMs - performance.now()));
  };
  let timer = setTimeout(tick, gapMs / 2);
  return {
    stop: async () => {
      stopped = true;
      clearTimeout(timer);
      await Promise.all([...inFlight]);
      return figures;
    },
  };
}

/** One Lookout ingest measurement on a fresh Lookout, with `count` watchers (or none) and `extra` beside the timed phase. */
async function lookoutPhase(
  options: Options,
  log: (line: string) => void,
  count: number,
  extra?: Beside,
): Promise<WatchedPhase & { sample: string | null }> {
  const server = await startLookout(options.lookoutRoot, options.shape.senders, options.profile);
  if (!server) {
    throw new Error(
      "Cannot run the fanout reference as Lookout has no ingest endpoint (POST /api/v2/write)",
    );
  }
  try {
    log(`pid ${server.target.pid}`);
    const watchers = count > 0 ? await server.watch(count) : null;
    const cpu = { ms: NaN };
    const beside = both(watchers ? watchersBeside(watchers, cpu) : undefined, extra);
    const result = await measureTarget(server.target, options.shape, log, beside);
    result.notes.unshift(...server.notes);
    if (!watchers) return { result, watchers: null, watchersCpuMs: NaN, sample: null };
    const { sample, ...figures } = await watchers.end();
    log(`watchers: ${JSON.stringify(figures)}`);
    return { result, watchers: figures, watchersCpuMs: cpu.ms, sample };
  } finally {
    await server.stop();
  }
}

/**
 * `--fanout-reference`: Lookout ingests (a) without watchers, (b) with
 * `--watchers` of its own, (c) without watchers while as many watchers (the
 * same bench/metrics_watchers.ts, another process) get from a raw Deno server
 * frames of the mean size (b)'s watchers received, shaped like Lookout's, at
 * the rate they received them, over the timed phase. So (c) pays the
 * fanout's sending and receiving on this machine, and none of it in Lookout.
 */
async function fanoutReference(
  options: Options,
  log: (line: string) => void,
): Promise<FanoutResult> {
  const n = options.watchers;
  // The raw server of (c) needs bench/servers' packages: installed first, not between phases.
  await ensureNodeModules();
  log("(a) without watchers");
  const { sample: _, ...alone } = await lookoutPhase(options, log, 0);
  log(`(a) ${Math.round(alone.result.pointsPerS)} points/s`);
  log(`(b) with ${n} watchers of its own`);
  const { sample, ...watched } = await lookoutPhase(options, log, n);
  log(`(b) ${Math.round(watched.result.pointsPerS)} points/s`);
  const timed = watched.watchers?.timed;
  if (!timed || timed.updates === 0 || sample === null) {
    throw new Error(
      `Cannot run the fanout reference as Lookout's watchers got no metrics_update in the timed phase: current value is ${
        JSON.stringify(timed ?? null)
      }`,
    );
  }
  const gapMs = 1000 / timed.updatesPerS;
  const bodyChars = Math.round(timed.meanFrameChars);
  const body = referenceBody(sample, bodyChars);
  log(
    `(c) raw server fanout to ${n} watchers: ${bodyChars} characters every ${gapMs.toFixed(0)} ms`,
  );
  const secrets = {
    secret: randomText(),
    issuer: "lookout",
    audience: "lookout",
    admin: { username: "unused", password: randomText(18) },
  };
  const raw = await startServer("raw", secrets, { kvPath: "", lookoutFlags: [] });
  running.add(raw);
  try {
    const watchers = await startWatchers({ ...secrets, base: raw.base, count: n, concurrency: 64 });
    const cpu = { ms: NaN };
    let rawCpu0 = 0;
    let caster: ReturnType<typeof broadcaster> | null = null;
    const feed = { rawCpuMs: NaN, broadcasts: 0, sent: 0, failures: [] as string[] };
    const reference = await lookoutPhase(
      options,
      log,
      0,
      both(watchersBeside(watchers, cpu), {
        start: async () => {
          rawCpu0 = await cpuMs(raw.pid);
          caster = broadcaster(raw.base, body, gapMs);
        },
        stop: async () => {
          Object.assign(feed, await caster!.stop());
          feed.rawCpuMs = (await cpuMs(raw.pid)) - rawCpu0;
        },
      }),
    );
    const { sample: __, ...figures } = await watchers.end();
    log(`(c) watchers: ${JSON.stringify(figures)}`);
    if (feed.failures.length) {
      reference.result.notes.push(
        `${feed.failures.length} broadcasts failed, the first: ${feed.failures[0]}`,
      );
    }
    log(`(c) ${Math.round(reference.result.pointsPerS)} points/s`);
    return {
      watchers: n,
      alone,
      watched,
      reference: {
        result: reference.result,
        watchers: figures,
        watchersCpuMs: cpu.ms,
        rawCpuMs: feed.rawCpuMs,
        broadcasts: feed.broadcasts,
        sent: feed.sent,
        bodyChars,
        gapMs,
      },
    };
  } finally {
    await raw.stop();
    running.delete(raw);
  }
}

// ---------------------------------------------------------------------------
// The bare KV ceiling

/** Runs bench/metrics_bare_kv.ts on a fresh KV file and reads its result line. */
async function runBare(shape: LoadShape, mode: BareConfig["mode"]): Promise<TargetResult> {
  const dir = await tempDir();
  const config: BareConfig = { kvPath: `${dir}/bare.sqlite3`, shape, mode };
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "bench/metrics_bare_kv.ts"],
    cwd: REPO_ROOT,
    env: { BENCH_METRICS_BARE: JSON.stringify(config), NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const { stop } = stoppable(child);
  const handle = { stop: () => stop(5000) };
  running.add(handle);
  const out = await child.output();
  running.delete(handle);
  const line = new TextDecoder().decode(out.stdout).trim().split("\n").pop() ?? "";
  if (!out.success || !line.startsWith("{")) {
    throw new Error(`Cannot measure the bare KV ceiling (${mode}): it exited with ${out.code}`);
  }
  return JSON.parse(line);
}

// ---------------------------------------------------------------------------
// The table

type Results = Partial<Record<Name, TargetResult>>;

const mib = (bytes: number) => (bytes / 1024 / 1024).toFixed(0);
const ms = (v: number) => (v < 10 ? v.toFixed(1) : v.toFixed(0));
const lat = (l: Latency | null) => l && l.n ? `${ms(l.p50)} / ${ms(l.p99)} (${l.n})` : "-";

/** With paced senders, the rows of their target rate and late batches; none for closed loop. */
function paced(
  results: ({ targetPointsPerS: number } | undefined)[],
): [string, (r: TargetResult) => string][] {
  if (!results.some((r) => r && r.targetPointsPerS > 0)) return [];
  return [
    [
      "target points/s (paced senders)",
      (r) => r.targetPointsPerS > 0 ? r.targetPointsPerS.toLocaleString("en-US") : "closed loop",
    ],
    [
      "batches started late (sender still waiting) / all",
      (r) => `${r.lateBatches.toLocaleString("en-US")} / ${r.batches.toLocaleString("en-US")}`,
    ],
  ];
}

/** The side-by-side table, then Lookout's ratios against its goals. */
function report(results: Results, skipped: Partial<Record<Name, string>>): string {
  const names = NAMES.filter((n) => results[n] || skipped[n]);
  const rows: [string, (r: TargetResult) => string][] = [
    ["points/s, durable", (r) => Math.round(r.pointsPerS).toLocaleString("en-US")],
    ...paced(Object.values(results)),
    ["points in the timed phase", (r) => r.points.toLocaleString("en-US")],
    ["batch answer p50 / p99 (ms)", (r) => `${ms(r.batchMs.p50)} / ${ms(r.batchMs.p99)}`],
    ["query 1 h at 10s, p50 / p99 (ms) (n)", (r) => lat(r.hour10s)],
    ["query 30 d at 1h, p50 / p99 (ms) (n)", (r) => lat(r.month1h)],
    ["target CPU per 1,000 points (ms)", (r) => ms(r.cpuMsPer1k)],
    [
      "everything else: kernel I/O, other processes (% of a core)",
      (r) => `${(100 * r.otherShare).toFixed(0)}%`,
    ],
    [
      `machine idle in the timed phase (% of the ${navigator.hardwareConcurrency} cores)`,
      (r) => `${(100 * r.idleShare).toFixed(0)}%`,
    ],
    ["RSS idle (MiB)", (r) => mib(r.rssIdle)],
    ["RSS after the timed phase (MiB)", (r) => mib(r.rssAfter)],
    ["RSS with 1,000 series (MiB)", (r) => mib(r.rssWithSeries)],
    ["stored total = answered total", (r) => r.storedSum === r.ackedSum ? "yes" : "NO"],
  ];
  const head = `| | ${names.map((n) => TITLES[n]).join(" | ")} |\n| --- | ${
    names.map(() => "---:").join(" | ")
  } |`;
  const body = rows.map(([label, cell]) =>
    `| ${label} | ${names.map((n) => results[n] ? cell(results[n]!) : "skipped").join(" | ")} |`
  ).join("\n");
  const lines: string[] = [];
  const lookout = results.lookout;
  for (const other of ["influx", "bare", "bare-group"] as const) {
    const r = results[other];
    if (!lookout || !r) continue;
    const ratio = lookout.pointsPerS / r.pointsPerS;
    const goal = GOALS[other];
    lines.push(
      `- Lookout ÷ ${TITLES[other]}, points/s: **${ratio.toFixed(2)}x**` +
        (goal === undefined
          ? " (no goal)"
          : ` (goal at least ${goal}x): ${ratio >= goal ? "met" : "MISSED"}`),
    );
  }
  for (const other of ["bare", "bare-group"] as const) {
    if (!results.influx || !results[other]) continue;
    lines.push(
      `- InfluxDB 1.6 ÷ ${TITLES[other]}, points/s: ${
        (results.influx.pointsPerS / results[other]!.pointsPerS).toFixed(2)
      }x`,
    );
  }
  for (const n of names) {
    if (skipped[n]) lines.push(`- ${skipped[n]}`);
    for (const note of results[n]?.notes ?? []) lines.push(`- ${TITLES[n]}: ${note}`);
  }
  return `${head}\n${body}\n\n${lines.join("\n")}`;
}

/** What the watchers got, for the notes under the main table. */
function watchedNote(w: Omit<WatchersResult, "sample">): string {
  const t = w.timed;
  return `${w.held} dashboard sockets held and subscribed to metrics (${w.failed} failed): ` +
    `${w.updates} metrics_update, ${w.complete} of them reached every socket` +
    // NaN (null in JSON) when none did.
    (w.complete > 0
      ? `, first to last socket median ${w.spreadMedianMs.toFixed(1)} ms, max ${
        w.spreadMaxMs.toFixed(1)
      } ms`
      : "") +
    (Object.keys(w.closedBy ?? {}).length
      ? `; sockets closed by the server while watching, by code: ${JSON.stringify(w.closedBy)}`
      : "") +
    (t
      ? `; in the timed phase ${t.updatesPerS.toFixed(2)} metrics_update/s, mean frame ${
        Math.round(t.meanFrameChars)
      } characters, ${t.frames} frames`
      : "");
}

/** The three fanout measurements side by side, and their ratios. */
function fanoutReport(f: FanoutResult): string {
  const n = f.watchers.toLocaleString("en-US");
  const phases: [string, WatchedPhase][] = [
    ["(a) Lookout, no watchers", f.alone],
    [`(b) Lookout, ${n} watchers of its own`, f.watched],
    [`(c) Lookout, no watchers; raw server's fanout to ${n}`, f.reference],
  ];
  const per = (w: WatchedPhase) => w.result.wallMs;
  const ofCore = (cpu: number, w: WatchedPhase) => Number.isNaN(cpu) ? "-" : pct(cpu / per(w));
  const timed = (w: WatchedPhase) => w.watchers?.timed ?? null;
  const rows: [string, (w: WatchedPhase) => string][] = [
    ["points/s, durable", (w) => Math.round(w.result.pointsPerS).toLocaleString("en-US")],
    ["÷ (a)", (w) => (w.result.pointsPerS / f.alone.result.pointsPerS).toFixed(2)],
    ...paced([f.alone.result]).map(([label, cell]): [string, (w: WatchedPhase) => string] => [
      label,
      (w) => cell(w.result),
    ]),
    ["Lookout CPU per 1,000 points (ms)", (w) => ms(w.result.cpuMsPer1k)],
    [
      "batch answer p50 / p99 (ms)",
      (w) => `${ms(w.result.batchMs.p50)} / ${ms(w.result.batchMs.p99)}`,
    ],
    ["metrics_update per second, timed phase", (w) => timed(w)?.updatesPerS.toFixed(2) ?? "-"],
    [
      "mean frame (characters = bytes, ASCII)",
      (w) => timed(w) ? Math.round(timed(w)!.meanFrameChars).toLocaleString("en-US") : "-",
    ],
    ["frames received, timed phase", (w) => timed(w)?.frames.toLocaleString("en-US") ?? "-"],
    [
      "sockets held (failed)",
      (w) => w.watchers ? `${w.watchers.held} (${w.watchers.failed})` : "-",
    ],
    ["watchers' process CPU (% of a core)", (w) => ofCore(w.watchersCpuMs, w)],
    [
      "raw server CPU (% of a core; ms per broadcast)",
      (w) =>
        w === f.reference
          ? `${ofCore(f.reference.rawCpuMs, w)}; ${
            (f.reference.rawCpuMs / f.reference.broadcasts).toFixed(1)
          }`
          : "-",
    ],
    ["everything but Lookout and the runner (% of a core)", (w) => pct(w.result.otherShare)],
    [
      `machine idle, timed phase (% of the ${navigator.hardwareConcurrency} cores)`,
      (w) => pct(w.result.idleShare),
    ],
  ];
  const head = `| fanout reference | ${phases.map(([t]) => t).join(" | ")} |\n| --- | ${
    phases.map(() => "---:").join(" | ")
  } |`;
  const body = rows.map(([label, cell]) =>
    `| ${label} | ${phases.map(([, w]) => cell(w)).join(" | ")} |`
  )
    .join("\n");
  const a = f.alone.result.pointsPerS;
  const b = f.watched.result.pointsPerS;
  const c = f.reference.result.pointsPerS;
  const r = f.reference;
  const lines = [
    `- with Lookout's watchers ÷ without, points/s: **${
      (b / a).toFixed(2)
    }x** (goal at least 2/3, ` +
    `"not slow down by more than a third"): ${b / a >= WATCHED_GOAL ? "met" : "MISSED"}`,
    `- with the raw server's fanout ÷ without, points/s: **${(c / a).toFixed(2)}x** ` +
    "(the same fanout paid on this machine, none of it in Lookout's code)",
    `- with Lookout's watchers ÷ with the raw server's fanout, points/s: ${
      (b / c).toFixed(2)
    }x (no goal)`,
    `- the reference sent ${r.broadcasts} broadcasts of ${
      r.bodyChars.toLocaleString("en-US")
    } characters, ` +
    `one every ${r.gapMs.toFixed(0)} ms (what (b)'s watchers received), reaching ${
      (r.sent / Math.max(1, r.broadcasts)).toFixed(0)
    } sockets each by the raw server's count`,
  ];
  // The reference stands for (b) only if its watchers got what (b)'s got.
  const tb = f.watched.watchers?.timed;
  const tc = r.watchers?.timed;
  if (
    // Written as "not within" so that a NaN (no frames at all) counts as off.
    !tb || !tc || !(Math.abs(tc.updatesPerS / tb.updatesPerS - 1) <= 0.1) ||
    !(Math.abs(tc.meanFrameChars / tb.meanFrameChars - 1) <= 0.02)
  ) {
    lines.push(
      `- NOT MATCHED: (c)'s watchers got ${tc?.updatesPerS.toFixed(2) ?? "-"} updates/s of ${
        tc ? Math.round(tc.meanFrameChars) : "-"
      } characters, (b)'s ${tb?.updatesPerS.toFixed(2) ?? "-"} of ${
        tb ? Math.round(tb.meanFrameChars) : "-"
      } (more than 10% apart in rate or 2% in size): (c) is no reference for (b)`,
    );
  }
  for (const [title, w] of phases) {
    for (const note of w.result.notes) lines.push(`- ${title}: ${note}`);
  }
  return `${head}\n${body}\n\n${lines.join("\n")}`;
}

async function machine(): Promise<string> {
  const cpuinfo = await Deno.readTextFile("/proc/cpuinfo").catch(() => "");
  const cpu = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1].trim() ?? "unknown CPU";
  const influx = await new Deno.Command("influxd", { args: ["version"], stdout: "piped" })
    .output().then((o) => new TextDecoder().decode(o.stdout).trim()).catch(() => "?");
  return `${navigator.hardwareConcurrency} cores (${cpu}), Linux ${Deno.osRelease()}; Deno ${Deno.version.deno}; ${influx}`;
}

/** The short commit of the checkout at `root`, or "?" outside git. */
async function commit(root: string): Promise<string> {
  return await commandOutput("git", ["rev-parse", "--short", "HEAD"], root) || "?";
}

/** Runs the benchmark with command-line `args`; resolves with the exit status. */
export async function main(args: string[]): Promise<number> {
  const options = readOptions(args);
  const { shape } = options;
  if (options.profile) await Deno.mkdir(options.profile, { recursive: true });
  const onSignal = () => cleanUp().finally(() => Deno.exit(130));
  for (const s of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(s, onSignal);
  const started = new Date();
  const results: Results = {};
  const skipped: Partial<Record<Name, string>> = {};
  let auth: AuthResult | null = null;
  let fanout: FanoutResult | null = null;
  let failed = 0;
  try {
    for (const name of options.only) {
      const log = (line: string) => console.error(`[${name}] ${line}`);
      try {
        if (name === "bare" || name === "bare-group") {
          results[name] = await runBare(shape, name === "bare" ? "batch" : "group");
          continue;
        }
        if (name === "lookout" && options.fanoutReference) {
          fanout = await fanoutReference(options, log);
          // The main table's Lookout column is the run with its watchers, as with --watchers alone.
          results.lookout = {
            ...fanout.watched.result,
            notes: [...fanout.watched.result.notes, watchedNote(fanout.watched.watchers!)],
          };
          continue;
        }
        const server = name === "influx"
          ? await startInflux()
          : await startLookout(options.lookoutRoot, shape.senders, options.profile);
        if (!server) {
          skipped.lookout = "Lookout: ingest endpoint not available (skipped)";
          console.error(skipped.lookout);
          continue;
        }
        try {
          log(`pid ${server.target.pid}`);
          const lookout = name === "lookout" ? server as LookoutServer : null;
          const watchers = lookout && options.watchers > 0
            ? await lookout.watch(options.watchers)
            : null;
          const watchersCpu = { ms: NaN };
          let beside: Beside | undefined = watchers
            ? watchersBeside(watchers, watchersCpu)
            : undefined;
          if (lookout && options.authChurn > 0) {
            const measured = await authBaseline(lookout, options, shape, watchers, log);
            const figures = measured.auth;
            auth = figures;
            beside = both(beside, {
              start: () => measured.churn.start("b"),
              stop: async () => {
                figures.withIngest = await measured.churn.stop();
                log(`auth churn with ingest: ${churnSummary(figures.withIngest)}`);
                await measured.churn.done();
              },
            });
          }
          const result = await measureTarget(server.target, shape, log, beside);
          result.notes.unshift(...server.notes);
          if (lookout && options.authChurn > 0) {
            result.notes.push(
              "the timed phase also carried the auth churn (below): its points/s, CPU per 1,000 points and " +
                '"everything else" include the churn\'s cost; compare points/s only with a run that churns too',
            );
          }
          if (watchers) {
            const { sample: _, ...w } = await watchers.end();
            log(`watchers: ${JSON.stringify(w)}`);
            result.notes.push(
              watchedNote(w) +
                `; their process used ${
                  pct(watchersCpu.ms / result.wallMs)
                } of a core in the timed phase`,
            );
          }
          results[name] = result;
        } finally {
          await server.stop();
        }
      } catch (error) {
        failed++;
        log((error as Error).message);
      }
    }
  } finally {
    await cleanUp();
  }
  const about = [
    `- Run ${started.toISOString().slice(0, 16).replace("T", " ")} UTC at ${await commit(
      REPO_ROOT,
    )}: ` +
    `\`deno run -A bench/metrics_ingest.ts${args.length ? ` ${args.join(" ")}` : ""}\`: ` +
    `${shape.senders} ${
      shape.rate > 0
        ? `senders paced to ${shape.rate.toLocaleString("en-US")} points/s in all`
        : "closed-loop senders"
    }, ${shape.batchSize}-point batches over ${shape.seriesCount} series, ` +
    `${shape.seconds} s timed after ${shape.warmupSeconds} s of warm-up, each target alone; ` +
    `RSS with ${shape.rssSeries} series.`,
    `- Machine: ${await machine()}.`,
    ...(options.lookoutRoot === REPO_ROOT ? [] : [
      `- Lookout run from \`${options.lookoutRoot}\` (commit ${await commit(
        options.lookoutRoot,
      )}).`,
    ]),
  ].join("\n");
  const text = `${about}\n\n${report(results, skipped)}\n${
    auth ? `\n${authReport(auth, options.watchers)}\n` : ""
  }${fanout ? `\n${fanoutReport(fanout)}\n` : ""}`;
  console.log(`\n${text}`);
  const complete = NAMES.every((n) => results[n] || skipped[n]);
  if (
    options.readme && complete && !options.profile && !options.authChurn &&
    !options.fanoutReference && !shape.rate
  ) {
    const readme = await Deno.readTextFile(README);
    await Deno.writeTextFile(README, replaceBetweenMarkers(readme, text, MARKERS));
    await new Deno.Command(Deno.execPath(), {
      args: ["fmt", "-q", "bench/README.md"],
      cwd: REPO_ROOT,
    })
      .output();
    console.error("wrote the table into bench/README.md");
  } else if (options.readme) {
    console.error(
      "bench/README.md left as it was: it takes a run of all four targets, without --profile, --auth-churn, --fanout-reference or --rate",
    );
  }
  if (options.json) {
    await Deno.writeTextFile(
      options.json,
      JSON.stringify({ options, results, skipped, auth, fanout }, null, 2),
    );
  }
  return failed ? 1 : 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (error) {
    console.error((error as Error).message);
    await cleanUp();
    Deno.exit(1);
  }
}
