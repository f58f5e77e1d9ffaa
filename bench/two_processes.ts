/**
 * Issue 14 part 4: two Lookout processes on one KV file, each holding half
 * the sockets. Measures stats fanout and revocation latency across them, and
 * the authenticated connect rate of the pair against one process.
 *
 *   deno run -A bench/two_processes.ts [--clients 10000] [--churn 10000] [--revokes 200]
 *                                      [--rounds 5] [--concurrency 64] [--quick] [--json FILE]
 *
 * A and B are started as bench/launch.ts's `lookoutCommand()` starts Lookout
 * (one instance each, LOOKOUT_WORKERS=1) on the same KV file; the load
 * generator (bench/two_load.ts) runs in a process of its own. After the
 * pair's phases B is stopped and the same churn runs against A alone. Every
 * subprocess is stopped on the way out, also on failure and on Ctrl-C.
 */
import { addLookoutAdmin, type ServerProcess, type ServerSecrets, startServer } from "./launch.ts";
import { readFlags } from "./flags.ts";
import { folders, runLoadProcess, running, stopAll, stopOnSignals } from "./children.ts";
import { measuredCommit } from "./commit.ts";
import { percentile } from "./loadgen.ts";
import type { ChurnFigures, FanoutSide, PairConfig, PairResult } from "./two_load.ts";
import { median, randomText } from "./util.ts";

const USAGE = `usage: deno run -A bench/two_processes.ts [options]

  --clients N       sockets held, half on each process (10000)
  --churn N         connect+auth+close clients of each auth-rate run (10000)
  --revokes N       revocation rounds across the processes, for the p99 (200)
  --rounds N        fanout rounds, triggered on A (5)
  --concurrency C   connects in flight at once (64)
  --timeout-ms T    longest wait for one connect+auth (10000)
  --quick           a smoke run: 1000 clients, 1000 churn, 20 revokes, 2 rounds
  --json FILE       also write every raw figure as JSON to FILE`;

/** The revocation goal of issue 14: p99 of logout to close across two processes, in ms. */
const REVOKE_GOAL_MS = 1000;

interface Options {
  clients: number;
  churn: number;
  revokes: number;
  rounds: number;
  concurrency: number;
  timeoutMs: number;
  quick: boolean;
  json: string | null;
}

/** Reads the command line. */
function readOptions(args: string[]): Options {
  const flags = readFlags(args, {
    clients: { type: "string" },
    churn: { type: "string" },
    revokes: { type: "string" },
    rounds: { type: "string" },
    concurrency: { type: "string" },
    "timeout-ms": { type: "string" },
    quick: { type: "boolean", default: false },
    json: { type: "string" },
  }, { usage: USAGE, doing: "run the two-process benchmark" });
  const quick = flags.values.quick;
  const count = (name: Parameters<typeof flags.number>[0], fallback: number, min: number) =>
    flags.number(name, fallback, { min, integer: true });
  return {
    clients: count("clients", quick ? 1000 : 10_000, 2),
    churn: count("churn", quick ? 1000 : 10_000, 1),
    revokes: count("revokes", quick ? 20 : 200, 1),
    rounds: count("rounds", quick ? 2 : 5, 1),
    concurrency: count("concurrency", 64, 2),
    timeoutMs: count("timeout-ms", 10_000, 100),
    quick,
    json: flags.values.json ?? null,
  };
}

/** Runs bench/two_load.ts with `config`, within `budgetMs`; resolves with its result. */
function load(config: PairConfig, budgetMs: number): Promise<PairResult> {
  return runLoadProcess(
    "bench/two_load.ts",
    { BENCH_TWO: JSON.stringify(config) },
    budgetMs,
    `two processes (${config.mode})`,
  );
}

/** Starts one Lookout process on the shared KV file. */
async function start(
  name: string,
  secrets: ServerSecrets,
  kvPath: string,
): Promise<ServerProcess> {
  // One instance per process whatever the caller's environment says: the
  // pair is two processes, not two processes of two workers each.
  const server = await startServer("lookout", secrets, {
    kvPath,
    lookoutFlags: [],
    lookoutEnv: { LOOKOUT_WORKERS: "1" },
  });
  running.add(server);
  console.error(`[two] ${name}: pid ${server.pid} on ${server.base}`);
  return server;
}

async function stopServer(server: ServerProcess): Promise<void> {
  await server.stop();
  running.delete(server);
}

/** The pair's figures and A alone's. */
interface Measured {
  pair: PairResult;
  alone: PairResult;
}

/** Starts A and B on one fresh KV file, runs the pair's phases, stops B, churns on A alone. */
async function measure(options: Options, secrets: ServerSecrets): Promise<Measured> {
  const dir = await Deno.makeTempDir({ prefix: "lookout-two-" });
  folders.add(dir);
  const kvPath = `${dir}/lookout.sqlite3`;
  await addLookoutAdmin(secrets, kvPath);
  const servers: ServerProcess[] = [];
  try {
    servers.push(await start("A", secrets, kvPath));
    servers.push(await start("B", secrets, kvPath));
    const [a, b] = servers;
    const config: PairConfig = {
      mode: "pair",
      a: { base: a.base, pid: a.pid },
      b: { base: b.base, pid: b.pid },
      secret: secrets.secret,
      issuer: secrets.issuer,
      audience: secrets.audience,
      clients: options.clients,
      churn: options.churn,
      warmup: options.quick ? 50 : 200,
      concurrency: options.concurrency,
      rounds: options.rounds,
      revokes: options.revokes,
      timeoutMs: options.timeoutMs,
      login: secrets.admin,
    };
    const pair = await load(
      config,
      60_000 + options.clients * 60 + options.churn * 40 + options.rounds * 30_000 +
        options.revokes * 12_000,
    );
    for (const e of pair.errors) console.error(`[two] ${e}`);
    await stopServer(b);
    const alone = await load(
      { ...config, mode: "alone", b: null },
      60_000 + options.churn * 20,
    );
    return { pair, alone };
  } catch (error) {
    for (const [i, s] of servers.entries()) {
      console.error(`[two] ${i === 0 ? "A" : "B"} output:\n${s.output()}`);
    }
    throw error;
  } finally {
    for (const s of servers) await stopServer(s);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    folders.delete(dir);
  }
}

const fixed = (n: number | null | undefined, digits: number) =>
  n === null || n === undefined || !Number.isFinite(n)
    ? "n/a"
    : n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });

/** Median and max of the rounds' trigger-to-last times of one side, and the sockets reached. */
function fanoutOf(sides: FanoutSide[]): { median: number; max: number; reached: string } {
  const full = sides.filter((s) => s.reached === s.of && s.of > 0);
  const toLast = full.map((s) => s.toLast);
  return {
    median: median(toLast),
    max: toLast.length ? Math.max(...toLast) : NaN,
    reached: sides.map((s) => `${s.reached}/${s.of}`).join(", "),
  };
}

/** p50, p99 and max of the revocations that closed, and how many did not. */
function revokeOf(rounds: PairResult["revocations"]) {
  const closed = rounds.flatMap((r) => r.ms === null ? [] : [r.ms]).sort((x, y) => x - y);
  return {
    n: rounds.length,
    failed: rounds.length - closed.length,
    p50: percentile(closed, 50),
    p99: percentile(closed, 99),
    max: closed[closed.length - 1] ?? NaN,
  };
}

/** The table of one run, Markdown, and the figures behind it. */
function report(options: Options, m: Measured) {
  const { pair, alone } = m;
  const fanA = fanoutOf(pair.fanout.map((r) => r.a));
  const fanB = fanoutOf(pair.fanout.map((r) => r.b));
  const firstB = median(
    pair.fanout.filter((r) => r.b.reached > 0).map((r) => r.b.toFirst),
  );
  const ab = revokeOf(pair.revocations.filter((r) => r.from === "A"));
  const ba = revokeOf(pair.revocations.filter((r) => r.from === "B"));
  const all = revokeOf(pair.revocations);
  const churns: [string, ChurnFigures | null][] = [
    ["A and B, alternating", pair.churn.pair],
    ["A only, B running", pair.churn.aWithB],
    ["A alone, B stopped", alone.churn.alone],
  ];
  const rate = (f: ChurnFigures | null) => f?.perSecond ?? NaN;
  const ratio = (x: number, y: number) => Number.isFinite(x / y) ? `${(x / y).toFixed(2)}x` : "n/a";
  const revokeRow = (what: string, r: ReturnType<typeof revokeOf>) =>
    `| revoke ${what}: logout to close 4403, p50 / p99 / max (ms), rounds failed (no 4403 in 10 s, or a refused login or logout) | ${
      fixed(r.p50, 1)
    } / ${fixed(r.p99, 1)} / ${fixed(r.max, 1)}, ${r.failed} of ${r.n} |`;
  const lines = [
    "| figure | value |",
    "| --- | --- |",
    `| sockets held on A / on B | ${pair.ramp.heldA} / ${pair.ramp.heldB} (of ${options.clients}) |`,
    `| fanout, trigger on A to last socket on A, median / max (ms) | ${fixed(fanA.median, 1)} / ${
      fixed(fanA.max, 1)
    } (reached ${fanA.reached}) |`,
    `| fanout, trigger on A to last socket on B, median / max (ms) | ${fixed(fanB.median, 1)} / ${
      fixed(fanB.max, 1)
    } (reached ${fanB.reached}) |`,
    `| fanout, trigger on A to first socket on B, median (ms) | ${fixed(firstB, 1)} |`,
    revokeRow("A to B", ab),
    revokeRow("B to A", ba),
    revokeRow("either way", all),
    `| goal: revoke-to-close p99 <= ${REVOKE_GOAL_MS} ms across two processes | ${
      all.failed === 0 && all.p99 <= REVOKE_GOAL_MS ? "met" : "missed"
    } (p99 ${fixed(all.p99, 1)} ms, ${all.failed} not closed) |`,
    ...churns.flatMap(([name, f]) =>
      f === null ? [] : [
        `| churn ${name}: authenticated connects/s (${options.concurrency} in flight) | ${
          fixed(f.perSecond, 0)
        } (${f.ok} ok, ${f.failed} failed) |`,
        `| churn ${name}: connect+auth p50 / p99 (ms) | ${fixed(f.p50, 1)} / ${fixed(f.p99, 1)} |`,
        `| churn ${name}: server CPU per connect, all Lookout processes (ms) | ${
          fixed(f.ok ? f.serverCpuMs / f.ok : NaN, 3)
        } (${f.serverCpuMsEach.map((ms) => fixed(ms, 0)).join(" + ")} ms) |`,
        `| churn ${name}: load generator / other processes (% of one core) | ${
          fixed(100 * f.loadgenCpuMs / f.wallMs, 0)
        } / ${fixed(100 * f.otherCpuMs / f.wallMs, 0)} |`,
      ]
    ),
    `| auth rate of the pair / A with B running | ${
      ratio(rate(pair.churn.pair), rate(pair.churn.aWithB))
    } |`,
    `| auth rate of the pair / A alone | ${
      ratio(rate(pair.churn.pair), rate(alone.churn.alone))
    } |`,
  ];
  const figures = {
    fanout: { a: fanA, b: fanB, firstB },
    revoke: { aToB: ab, bToA: ba, all, goalMet: all.failed === 0 && all.p99 <= REVOKE_GOAL_MS },
    churn: {
      pair: pair.churn.pair,
      aWithB: pair.churn.aWithB,
      alone: alone.churn.alone,
    },
  };
  return { text: lines.join("\n"), figures };
}

/** Runs the two-process benchmark with command-line `args`; resolves with the exit status. */
export async function main(args: string[]): Promise<number> {
  const options = readOptions(args);
  const secrets: ServerSecrets = {
    secret: randomText(),
    issuer: "lookout",
    audience: "lookout",
    admin: { username: "bench-admin", password: randomText(18) },
  };
  stopOnSignals();
  const started = new Date();
  let measured: Measured;
  try {
    measured = await measure(options, secrets);
  } finally {
    await stopAll();
  }
  const { text, figures } = report(options, measured);
  const commit = await measuredCommit();
  console.log(
    `\n- Run ${
      started.toISOString().slice(0, 16).replace("T", " ")
    } UTC: \`deno run -A bench/two_processes.ts${args.length ? ` ${args.join(" ")}` : ""}\` at ${
      commit ?? "unknown commit"
    }: two Lookout processes (LOOKOUT_WORKERS=1 each) on one KV file.\n\n${text}\n`,
  );
  const errors = [...measured.pair.errors, ...measured.alone.errors];
  console.log(JSON.stringify({ options, commit, figures, errors }));
  if (options.json) {
    await Deno.writeTextFile(
      options.json,
      JSON.stringify({ options, commit, ...measured }, null, 2),
    );
  }
  return errors.length ? 1 : 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (error) {
    console.error((error as Error).message);
    await stopAll();
    Deno.exit(1);
  }
}
